/**
 * Which connections a sync drops when a pod leaves, and what a failing `conntrack` does to the sync.
 *
 * A pod's connections through this host answer from the pod itself only where this host translates
 * on to pods (kube-proxy in IPVS mode here). The lab's host has no IPVS, so a Service whose ClusterIP
 * is the pod's own address stands in for it: smartnat's DNAT then sends the client straight to the
 * pod, and the host's conntrack entry looks exactly like one IPVS would leave: original destination
 * the external address:port, reply source the pod. Next to it, the host itself talks to the same pod.
 *
 * Mappings come from the test API server, so the status that remembers the pod is the one smartnat wrote.
 */
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {chmod, mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {listConntrackFlows} from '../../src/lib/host/conntrack.js'
import type {MappingStatus} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {PatchType, startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {BACKENDS, requireBackend} from '../support/backends.js'
import {podOf, udpFlow, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {mappingManifest, serviceManifests, type MappingFixture} from '../support/mappings.js'
import {smartnat} from '../support/smartnat-cli.js'

const POD = '198.19.200.12' as Ipv4
const EXT = LAB_PLAN.host.eth1.addresses[0]
const CLIENT = LAB_PLAN.client1.addresses[0]
const HOST_CLUSTER_SIDE = LAB_PLAN.host.cluster0.address
const PORT = 5300
const PINNED: MappingFixture = {name: 'pinned', addresses: [EXT], serviceName: 'pinned', ports: [{port: PORT, protocol: 'udp', servicePort: 5353}]}

interface KubeSyncJson extends SyncJson {
  statusesWritten: number
  conntrackError?: string
}

for (const backend of BACKENDS) describe(`sync drops only smartnat's connections to a pod that left, and survives a failing conntrack (root, ${backend.name})`, function () {
  this.timeout(60_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let dir: string | undefined
  let sourcePort = 41_000

  const status = () => (server!.api.get(server!.types.mappings, 'default', 'pinned') as unknown as {status?: MappingStatus}).status
  const setPods = (pods: string[]) =>
    server!.api.patch(server!.types.endpointSlices, 'default', 'pinned-lab', PatchType.merge, {endpoints: pods.map((ip) => ({addresses: [ip], conditions: {ready: true}}))})
  const sync = (flags: string[], env?: Record<string, string>) =>
    smartnat(['sync', '--kubeconfig', join(dir!, 'kubeconfig'), '--netns', lab!.ns('host'), '--lock-file', join(dir!, 'smartnat.lock'), '--backend', backend.name, ...flags], env ? {env} : {})
  const syncJson = async () => {
    const result = await sync(['--json'])
    expect(result.code, result.stderr).to.equal(0)
    return JSON.parse(result.stdout) as KubeSyncJson
  }
  /** The host's entries answered by the pod, as `original destination:port` each. */
  const entriesOfPod = async () => (await listConntrackFlows(lab!.hostRunner, {replySrc: POD})).map((f) => `${f.original.dst}:${f.original.dport}`).sort()

  /** A client's flow through smartnat to the pod, and the host's own flow to it; the status remembers the pod. */
  async function connectBoth(): Promise<void> {
    setPods([POD])
    expect((await syncJson()).mappings[0]!.configuredAddresses[EXT]!.podIPs).to.deep.equal([POD])
    expect(status()!.configuredAddresses![EXT]!.podIPs).to.deep.equal([POD])
    sourcePort++
    expect((await udpFlow(lab!, 'client1', {ip: CLIENT, port: sourcePort}, {ip: EXT, port: PORT}, 1)).map(podOf)).to.deep.equal([POD])
    // Another port than the client's: masquerading keeps that one, and both would be one tuple at the pod.
    expect((await udpFlow(lab!, 'host', {ip: HOST_CLUSTER_SIDE, port: sourcePort + 1000}, {ip: POD, port: 5353}, 1)).map(podOf)).to.deep.equal([POD])
    expect(await entriesOfPod()).to.deep.equal([`${EXT}:${PORT}`, `${POD}:5353`])
  }

  before(async function () {
    requireLab(this)
    requireBackend(this, backend)
    lab = await createLab()
    server = await startApiServer({crds: ['crds/mapping.yaml']})
    dir = await mkdtemp(join(tmpdir(), 'smartnat-conntrack-'))
    await server.writeKubeconfig(join(dir, 'kubeconfig'))
    const objects = [...serviceManifests({name: 'pinned', clusterIP: POD, ports: [{protocol: 'udp', port: 5353, targetPort: 5353}], pods: [POD]}), mappingManifest(PINNED)]
    server.createAll(objects)
  })

  afterEach(async () => {
    if (lab) await lab.exec('host', 'conntrack', ['-F'])
  })

  after(async () => {
    await server?.stop()
    await lab?.destroy()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('drops the connection smartnat translated to the pod that left, and leaves the host’s own connection to it', async () => {
    await connectBoth()
    setPods([])
    const json = await syncJson()
    expect(json).to.include({conntrackDeleted: 1, statusesWritten: 1})
    expect(json.conntrackError).to.equal(undefined)
    expect(status()!.configuredAddresses![EXT]!.podIPs).to.deep.equal([])
    expect(await entriesOfPod()).to.deep.equal([`${POD}:5353`])
  })

  it('with conntrack failing, the sync still exits 0, writes the statuses and warns that the connections stay', async () => {
    await connectBoth()
    const stubs = await mkdtemp(join(tmpdir(), 'smartnat-stub-'))
    try {
      // Answers the version check like the real tool, fails everything else.
      const stub = join(stubs, 'conntrack')
      const real = spawnSync('sh', ['-c', 'command -v conntrack'], {encoding: 'utf8'}).stdout.trim()
      await writeFile(stub, `#!/bin/sh\n[ "$1" = --version ] && exec ${real} --version\necho "conntrack v1.4.7 (conntrack-tools): Operation failed: injected by the test" >&2\nexit 2\n`)
      await chmod(stub, 0o755)
      setPods([])
      // As an operator or cron sees it; with --json the same error is the output's conntrackError.
      const {code, stdout, stderr} = await sync([], {PATH: `${stubs}:${process.env.PATH}`})
      expect(code, stderr).to.equal(0)
      expect(stdout).to.include('kernel already up to date')
      expect(stderr)
        .to.include('rules applied, but connections to vanished targets were not dropped')
        .and.include('injected by the test')
        .and.include(`pods that left (${POD})`)
      expect(status()!.configuredAddresses![EXT]!.podIPs, 'the status is written all the same').to.deep.equal([])
      expect(await entriesOfPod(), 'nothing was dropped').to.deep.equal([`${EXT}:${PORT}`, `${POD}:5353`])
    } finally {
      await rm(stubs, {recursive: true, force: true})
    }
  })
})
