/** A sync that cannot apply keeps the old rules working; two smartnat runs never apply at the same time. */
import {expect} from 'chai'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS} from '../support/backends.js'
import {syncArgs, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, type EchoResult, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture, type ServiceFixture} from '../support/mappings.js'
import {smartnat, smartnatJson, startSmartnat, stderrSays} from '../support/smartnat-cli.js'
import {acquireLock} from '../../src/lib/host/lock.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]

const pod = (r: EchoResult) => (r.ok ? r.fields.pod : r.error)
const mapping = (name: string, address: string, ports: number[]): MappingFixture => ({
  name,
  addresses: [address],
  serviceName: 'web',
  ports: ports.map((port) => ({port, servicePort: 80})),
})

for (const backend of BACKENDS) describe(`smartnat sync when it cannot apply, and under the lock (root, ${backend.name})`, function () {
  this.timeout(60_000)
  let lab: Lab
  let dir: ManifestDir
  let web: ServiceFixture

  const write = (mappings: MappingFixture[]) => dir.write({services: [web], mappings})

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    web = serviceFromLab('web', lab.services(), VIP)
  })

  afterEach(async function () {
    if (!lab) return
    // The flush command itself is tested next to a foreign ruleset; here only a clean start matters.
    await backend.reset(lab)
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  it('a failed apply exits non-zero naming what failed, and the old rules and sets keep working', async () => {
    await write([mapping('a', EXT_A, [8080]), mapping('b', EXT_B, [8080])])
    await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir))
    // Someone edits smartnat's state by hand so that removing b (and adding a port to a) cannot be applied.
    const obstruction = await backend.obstruct(lab, {address: EXT_B, protocol: 'tcp', port: 8080, target: `${VIP}:80`, mapping: 'default/b'})
    const before = await backend.dump(lab)

    await write([mapping('a', EXT_A, [8080, 9090])])
    const failed = await smartnat(syncArgs(backend.name, lab, dir))
    expect(failed.code).to.equal(1)
    for (const words of obstruction.errorIncludes) expect(failed.stderr).to.include(words)

    expect(await backend.dump(lab)).to.equal(before)
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)))
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_B, 8080)))
    expect(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 9090, {timeoutMs: 800}))).to.equal('refused')

    // Once the obstruction is gone the same manifests apply.
    await obstruction.lift()
    const repaired = await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir))
    expect(repaired.changed).to.equal(true)
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 9090)))
    expect(pod(await lab.tcpRequest('client1', CLIENT, EXT_B, 8080, {timeoutMs: 800}))).to.equal('refused')
  })

  it('with --lock-wait 0 a sync fails at once naming the holder; otherwise it waits for the holder and then applies', async () => {
    await write([mapping('a', EXT_A, [8080])])
    const lock = await acquireLock({path: dir.file('smartnat.lock'), purpose: 'watch'})
    try {
      const refused = await smartnat(syncArgs(backend.name, lab, dir, '--lock-wait', '0'))
      expect(refused.code).to.not.equal(0)
      expect(refused.stderr).to.include(`is held by smartnat watch (pid ${process.pid}`)

      const waiting = startSmartnat(syncArgs(backend.name, lab, dir, '--lock-wait', '20', '--json'))
      await stderrSays(waiting, `waiting up to 20 s for ${dir.file('smartnat.lock')}, held by smartnat watch (pid ${process.pid}, since `)
      expect(waiting.child.exitCode, 'the sync is still waiting').to.equal(null)
      expect(await backend.installed(lab)).to.equal(false)
      await lock.release()
      const done = await waiting.done
      expect(done.code, done.stderr).to.equal(0)
      expect((JSON.parse(done.stdout) as SyncJson).changed).to.equal(true)
    } finally {
      await lock.release()
    }
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)))
  })

  it('two syncs started together both succeed, one after the other: exactly one of them writes', async () => {
    await write([mapping('a', EXT_A, [8080]), mapping('b', EXT_B, [8080])])
    const runs = await Promise.all([0, 1].map(() => startSmartnat(syncArgs(backend.name, lab, dir, '--json')).done))
    for (const run of runs) expect(run.code, run.stderr).to.equal(0)
    const changed = runs.map((run) => (JSON.parse(run.stdout) as SyncJson).changed).sort()
    expect(changed).to.deep.equal([false, true])
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_B, 8080)))
  })
})
