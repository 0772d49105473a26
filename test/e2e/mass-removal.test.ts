/**
 * The mass-removal guard and whole-file reads, end to end in the namespace lab, for each backend:
 * with 20 Mappings carrying traffic, a manifest cut to a valid YAML prefix of 3 Mappings, a
 * half-written manifest and an API server that lists no Mappings at all (a wrong context) change
 * nothing, for `sync` and for `watch`; a removal of 15 of 20 that persists is applied by `watch`
 * after --removal-delay, and by `sync --allow-mass-removal` at once.
 */
import {expect} from 'chai'
import {mkdtemp, readFile, rm, truncate, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS, cleanHost} from '../support/backends.js'
import {commandArgs, eventually, labArgs, syncArgs, type SyncJson} from '../support/e2e.js'
import {freePort, httpGet, metricValue} from '../support/http.js'
import {LAB_PLAN, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture, type ServiceFixture} from '../support/mappings.js'
import {smartnat, smartnatJson, startSmartnat, type RunningCli, killSmartnat} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const WEB_PODS = ['198.19.200.11', '198.19.200.12']
const EXT_A = LAB_PLAN.host.eth1.addresses[0]
const CLIENT = LAB_PLAN.client1.addresses[0]
const PORTS = Array.from({length: 20}, (_, i) => 8001 + i)
const MAPPINGS: MappingFixture[] = PORTS.map((port, i) => ({name: `m-${String(i + 1).padStart(2, '0')}`, addresses: [EXT_A], serviceName: 'web', ports: [{port, servicePort: 80}]}))
/** Resyncs of the watch below: short, so that a removal delay of whole resyncs passes within the test. */
const RESYNC = '1s'
const REMOVAL_DELAY_RESYNCS = 15

for (const backend of BACKENDS) describe(`mass-removal guard and manifest files in the namespace lab (root, ${backend.name})`, function () {
  this.timeout(120_000)
  let lab: Lab | undefined
  let dir: ManifestDir | undefined
  let web: ServiceFixture
  let daemon: RunningCli | undefined
  let port: number

  const manifest = () => dir!.file('manifests.yaml')
  const writeAll = () => dir!.write({services: [web], mappings: MAPPINGS})
  /** Cuts the manifest file in place, as a writer that truncated it has, right before the Mapping numbered `kept + 1`. */
  const cutAfter = async (kept: number) => {
    const text = await readFile(manifest(), 'utf8')
    const next = text.indexOf(`name: ${MAPPINGS[kept]!.name}\n`)
    await truncate(manifest(), Buffer.byteLength(text.slice(0, text.lastIndexOf('---\n', next))))
  }
  /** The manifest as a writer left it halfway through the 11th Mapping, written in flow style: not YAML. */
  const halfWritten = async () => {
    const text = await readFile(manifest(), 'utf8')
    const kept = text.slice(0, text.lastIndexOf('---\n', text.indexOf(`name: ${MAPPINGS[10]!.name}\n`)))
    await writeFile(manifest(), `${kept}---\napiVersion: smartnat.aureacentral.com/v1alpha1\nkind: Mapping\nmetadata: {name: m-11, namespace: default}\nspec: {addresses: [198.18`)
  }
  /** The external ports whose traffic does not reach a pod. */
  const silentPorts = async (ports: number[]) => {
    const silent: number[] = []
    for (const p of ports) {
      const result = await lab!.tcpRequest('client1', CLIENT, EXT_A, p, {timeoutMs: 800})
      if (!(result.ok && WEB_PODS.includes(result.fields.pod!))) silent.push(p)
    }
    return silent
  }
  const readyz = () => httpGet(port, '/readyz')
  const metric = async (sample: string) => metricValue((await httpGet(port, '/metrics')).body, sample)
  const oneLine = (text: string) => text.replace(/\s+/g, ' ')

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    await cleanHost(lab, backend)
    web = serviceFromLab('web', lab.services(), VIP)
    port = await freePort()
  })

  after(async () => {
    await killSmartnat(daemon)
    await removeBackendLab(lab, dir)
  })

  it('sync programs 20 Mappings, and each carries traffic', async () => {
    await writeAll()
    const result = await smartnatJson<SyncJson>(syncArgs(backend.name, lab!, dir!))
    expect(result).to.include({configured: 20, changed: true})
    expect(await silentPorts(PORTS)).to.deep.equal([])
  })

  it('sync refuses a manifest cut to a valid prefix of 3 Mappings: exit 6, the counts, the flag to use, nothing changed', async () => {
    const before = await backend.dump(lab!)
    await cutAfter(3)
    const refused = await smartnat(syncArgs(backend.name, lab!, dir!))
    expect(refused.code, refused.stderr).to.equal(6)
    expect(oneLine(refused.stderr)).to.include(
      'mass removal held: this sync would remove 17 of the 20 Mappings programmed here (default/m-04, default/m-05, default/m-06, default/m-07, default/m-08 and 12 more), more than --max-removal 50% and at least 10; the kernel was left as it is. If the source is right, run again with --allow-mass-removal.',
    )
    expect(await backend.dump(lab!)).to.equal(before)
    expect(await silentPorts(PORTS)).to.deep.equal([])
  })

  it('sync fails on a half-written manifest naming the file and line, and changes nothing', async () => {
    await writeAll()
    await halfWritten()
    const before = await backend.dump(lab!)
    const failed = await smartnat(syncArgs(backend.name, lab!, dir!))
    expect(failed.code).to.equal(1)
    expect(oneLine(failed.stderr)).to.match(/manifests\.yaml:\d+: invalid YAML: unexpected end of the stream within a flow collection/)
    expect(await backend.dump(lab!)).to.equal(before)
  })

  it('sync refuses an API that lists no Mappings at all (another cluster’s context), and changes nothing', async () => {
    let empty: ApiServer | undefined
    const kubeDir = await mkdtemp(join(tmpdir(), 'smartnat-empty-api-'))
    try {
      empty = await startApiServer({crds: ['crds/mapping.yaml']})
      await empty.writeKubeconfig(join(kubeDir, 'kubeconfig'))
      const before = await backend.dump(lab!)
      const refused = await smartnat(['sync', '--kubeconfig', join(kubeDir, 'kubeconfig'), ...labArgs(lab!, dir!), '--backend', backend.name])
      expect(refused.code, refused.stderr).to.equal(6)
      expect(oneLine(refused.stderr)).to.include('this sync would remove 20 of the 20 Mappings programmed here')
      expect(await backend.dump(lab!)).to.equal(before)
    } finally {
      await empty?.stop()
      await rm(kubeDir, {recursive: true, force: true})
    }
  })

  it('watch holds the rules when the manifest is cut to 3 Mappings: /readyz 503 with the reason, the metrics; restored, it is ready again', async () => {
    await writeAll()
    daemon = startSmartnat(
      commandArgs('watch', backend.name, lab!, dir!, '--metrics-addr', `127.0.0.1:${port}`, '--resync', RESYNC, '--removal-delay', String(REMOVAL_DELAY_RESYNCS)),
      {timeoutMs: 110_000},
    )
    await eventually('/readyz 200', 20_000, async () => ((await readyz()).status === 200 ? true : undefined))
    await cutAfter(3)
    const held = await eventually('the hold in /readyz', 10_000, async () => {
      const reply = await readyz()
      return reply.body.includes('mass removal held') ? reply : undefined
    })
    expect(held.status).to.equal(503)
    expect(held.body).to.match(
      /^not ready: mass removal held: the source would remove 17 of the 20 Mappings programmed here \(default\/m-04, .* and 12 more\), more than --max-removal 50%; applied at \S+Z if it persists\n$/,
    )
    expect(await metric('smartnat_removal_held')).to.equal(17)
    expect(await metric('smartnat_removals_held_total')).to.be.at.least(1)
    expect(await silentPorts(PORTS)).to.deep.equal([])
    await writeAll()
    await eventually('/readyz 200 again', 10_000, async () => ((await readyz()).status === 200 ? true : undefined))
    expect(await metric('smartnat_removal_held')).to.equal(0)
    expect(await silentPorts(PORTS)).to.deep.equal([])
  })

  it('watch keeps the last good snapshot while the manifest is half-written, says why, and counts it', async () => {
    await halfWritten()
    const failing = await eventually('the YAML error in /readyz', 10_000, async () => {
      const reply = await readyz()
      return reply.body.includes('invalid YAML') ? reply : undefined
    })
    expect(failing.status).to.equal(503)
    expect(failing.body).to.match(/^not ready: source failing; the rules of the last sync stay in place\nlast error: .*manifests\.yaml:\d+: invalid YAML: /)
    expect(await metric('smartnat_manifest_read_errors_total')).to.be.at.least(1)
    expect(await silentPorts(PORTS)).to.deep.equal([])
    await writeAll()
    await eventually('/readyz 200 again', 10_000, async () => ((await readyz()).status === 200 ? true : undefined))
  })

  it(`watch applies a genuine removal of 15 of 20 once it has lasted ${REMOVAL_DELAY_RESYNCS} resyncs`, async () => {
    await dir!.write({services: [web], mappings: MAPPINGS.slice(0, 5)})
    await eventually('the hold in /readyz', 10_000, async () => ((await readyz()).body.includes('would remove 15 of the 20 Mappings') ? true : undefined))
    expect(await silentPorts([PORTS[19]!]), 'held: a removed Mapping still works').to.deep.equal([])
    await eventually('the removal to be applied', 60_000, async () => ((await readyz()).status === 200 ? true : undefined))
    expect(await metric('smartnat_removal_held')).to.equal(0)
    expect(await silentPorts(PORTS)).to.deep.equal(PORTS.slice(5))
  })

  it('watch logged the hold and the removal with their counts, and stops leaving the rules', async () => {
    daemon!.child.kill('SIGTERM')
    const result = await daemon!.done
    expect(result.code, result.stderr).to.equal(0)
    const lines = result.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    const held = lines.filter((l) => l.msg === 'mass removal held; the rules stay as they are')
    expect(held.map(({programmed, removed, remaining}) => ({programmed, removed, remaining}))).to.deep.equal([
      {programmed: 20, removed: 17, remaining: 3},
      {programmed: 20, removed: 15, remaining: 5},
    ])
    expect(lines.filter((l) => l.msg === 'mass removal applied after being held')).to.have.length(1).and.to.have.nested.property('[0].removed', 15)
    expect(await silentPorts(PORTS.slice(0, 5))).to.deep.equal([])
  })

  it('sync --allow-mass-removal applies a removal it would refuse, at once', async () => {
    await writeAll()
    expect(await smartnatJson<SyncJson>(syncArgs(backend.name, lab!, dir!))).to.include({configured: 20, changed: true})
    await cutAfter(3)
    expect((await smartnat(syncArgs(backend.name, lab!, dir!))).code).to.equal(6)
    const result = await smartnatJson<SyncJson & {massRemoval: {programmed: number; removed: string[]}}>(syncArgs(backend.name, lab!, dir!, '--allow-mass-removal'))
    expect(result).to.include({configured: 3, changed: true})
    expect(result.massRemoval.programmed).to.equal(20)
    expect(result.massRemoval.removed).to.have.length(17)
    expect(await silentPorts(PORTS)).to.deep.equal(PORTS.slice(3))
  })
})
