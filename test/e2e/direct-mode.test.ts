/**
 * `mode: direct` end to end, for each backend: `smartnat watch` against the test API server and a
 * namespace lab whose node runs no kube-proxy (it only routes to its pods), so every connection that
 * reaches a pod was sent there by smartnat alone. New connections spread over the ready endpoints;
 * an endpoint that stops being ready takes no new ones but keeps its own; a deleted one loses its
 * flows; terminating endpoints serve when nothing is ready; no endpoint at all is refused at once and
 * said in the status, also to a client that only its interface's reply table reaches; ClientIP
 * affinity keeps each client on one pod; a named targetPort reaches each pod on its own port.
 */
import {expect} from 'chai'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {MappingCondition, MappingStatus} from '../../src/lib/mapping/types.js'
import {SERVICE_NAME_LABEL} from '../../src/lib/mapping/types.js'
import {PatchType, startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {BACKENDS, requireBackend} from '../support/backends.js'
import {eventually} from '../support/e2e.js'
import {freePort, httpGet} from '../support/http.js'
import {LAB_DIRECT_PODS, LAB_PLAN, createLab, requireLab, type EchoResult, type Lab, type LabProtocol} from '../support/lab.js'
import {mappingManifest, type MappingFixture} from '../support/mappings.js'
import {WatchDaemon} from '../support/watch-daemon.js'

const PODS = LAB_DIRECT_PODS.map((p) => p.ip)
/**
 * The named targetPort case: two pods that number the port differently, neither of them behind the
 * Service of the other tests, so that a pod deleted there is gone from every EndpointSlice.
 */
const SPLIT_PODS = [{ip: '198.19.200.14', tcp: [8080]}, {ip: '198.19.200.15', tcp: [8081]}]
const EXT = LAB_PLAN.host.eth1.addresses[0]
const [CLIENT_A, CLIENT_B] = LAB_PLAN.client1.addresses
/** eth2's address, whose clients (client2) the host reaches only through eth2's reply table. */
const EXT_2 = LAB_PLAN.host.eth2.addresses[0]
const CLIENT_2 = LAB_PLAN.client2.addresses[0]
const TCP_PORT = 8080
const UDP_PORT = 5300
const SPLIT_PORT = 9000
const IDLE_PORT = 9090

const WEB: MappingFixture = {
  name: 'web',
  addresses: [EXT],
  serviceName: 'web',
  mode: 'direct',
  ports: [{port: TCP_PORT, servicePort: 80}, {port: UDP_PORT, protocol: 'udp', servicePort: 53}],
}
const SPLIT: MappingFixture = {name: 'split', addresses: [EXT], serviceName: 'split', mode: 'direct', ports: [{port: SPLIT_PORT, servicePort: 80}]}
/** A Service without endpoints on eth2. */
const IDLE: MappingFixture = {
  name: 'idle',
  addresses: [EXT_2],
  serviceName: 'idle',
  mode: 'direct',
  ports: [{port: IDLE_PORT, servicePort: 80}, {port: IDLE_PORT, protocol: 'udp', servicePort: 53}],
}
const CLUSTER_IPS: Record<string, string> = {web: '198.19.100.10', split: '198.19.100.20', idle: '198.19.100.30'}

/** An endpoint as an EndpointSlice lists it; conditions left out mean ready. */
interface SliceEndpoint {
  ip: string
  ready?: boolean
  serving?: boolean
  terminating?: boolean
}

const ready = (ips: string[]): SliceEndpoint[] => ips.map((ip) => ({ip, ready: true}))

function sliceEndpoints(endpoints: SliceEndpoint[]): Record<string, unknown>[] {
  return endpoints.map(({ip, ...conditions}) => ({addresses: [ip], conditions}))
}

/** A Service whose ports target ports by name, as a Deployment's pods name them. */
function service(name: string, ports: {name: string; protocol: LabProtocol; port: number; targetPort: string}[]): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {name, namespace: 'default'},
    spec: {type: 'ClusterIP', clusterIP: CLUSTER_IPS[name], ports: ports.map((p) => ({...p, protocol: p.protocol.toUpperCase()}))},
  } as KubeObject
}

function slice(name: string, serviceName: string, ports: {name: string; protocol: LabProtocol; port: number}[], endpoints: SliceEndpoint[]): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {name, namespace: 'default', labels: {[SERVICE_NAME_LABEL]: serviceName}},
    addressType: 'IPv4',
    ports: ports.map((p) => ({...p, protocol: p.protocol.toUpperCase()})),
    endpoints: sliceEndpoints(endpoints),
  } as KubeObject
}

/** How many answers came from each pod; a failed request counts under its error ("refused", "timeout"...). */
function countByPod(results: EchoResult[]): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const r of results) {
    const key = r.ok ? r.fields.pod! : r.error
    counts[key] = (counts[key] ?? 0) + 1
  }
  return counts
}

const podOf = (r: EchoResult) => (r.ok ? r.fields.pod! : r.error)

for (const backend of BACKENDS) describe(`mode direct: straight to the pods, no kube-proxy (root, ${backend.name})`, function () {
  this.timeout(60_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let dir: string | undefined
  let daemon: WatchDaemon | undefined
  let metricsPort: number
  // Below the ephemeral range (32768-60999), so no new request's socket can share a held flow's tuple.
  let sourcePort = 31_000

  const status = (name: string) => (server!.api.get(server!.types.mappings, 'default', name) as unknown as {status?: MappingStatus}).status
  const condition = (name: string, kind: string): MappingCondition | undefined => status(name)?.conditions?.find((c) => c.type === kind)
  const podIPs = (name: string) => status(name)?.configuredAddresses?.[EXT]?.podIPs
  /** What the web Service's EndpointSlice lists now. */
  let webEndpoints = ready(PODS)
  const setWebEndpoints = (endpoints: SliceEndpoint[]) => {
    webEndpoints = endpoints
    server!.api.patch(server!.types.endpointSlices, 'default', 'web-a', PatchType.merge, {endpoints: sliceEndpoints(endpoints)})
  }
  const requests = (protocol: LabProtocol, source: string, port: number, count: number) => lab!.requests(protocol, 'client1', source, EXT, port, count, {timeoutMs: 1000})
  const hold = (protocol: LabProtocol) => lab!.holdConnection('client1', {protocol, source: {ip: CLIENT_A, port: ++sourcePort}, target: {ip: EXT, port: protocol === 'tcp' ? TCP_PORT : UDP_PORT}})
  const log = () => daemon!.tail(Number.MAX_SAFE_INTEGER)
  const withLog = <T>(check: Promise<T>): Promise<T> =>
    check.catch((error: Error) => {
      throw new Error(`${error.message}\n--- watch log ---\n${daemon?.tail(30)}`)
    })
  // Passes that planned and synced: those that applied changes and those that found the kernel up to date (a
  // pass skipped because nothing it reads changed, as after a status write, is not one).
  const completedPasses = () => log().split('\n').filter((line) => /"msg":"sync(:| applied)/.test(line)).length

  /** Makes a change through the API and waits for the one watch pass that follows it (the watch resyncs only every minute). */
  async function change(make: () => void): Promise<void> {
    const before = completedPasses()
    make()
    await withLog(eventually('the watch pass after the change', 10_000, () => (completedPasses() > before ? true : undefined)))
  }

  /** Waits until the status lists exactly these pods: the pass that wrote it has run its conntrack cleanup. */
  async function statusShows(name: string, pods: string[]): Promise<void> {
    const want = [...pods].sort()
    await withLog(eventually(`the status of ${name} to list ${want.join(', ')}`, 10_000, () => {
      const now = podIPs(name)
      return now && now.length === want.length && now.every((ip, i) => ip === want[i]) ? true : undefined
    }))
  }

  /** Every pod of web ready again, whatever the test before left. */
  async function allReady(): Promise<void> {
    if (JSON.stringify(webEndpoints) !== JSON.stringify(ready(PODS))) await change(() => setWebEndpoints(ready(PODS)))
    await statusShows('web', PODS)
  }

  before(async function () {
    this.timeout(90_000)
    requireLab(this)
    requireBackend(this, backend)
    lab = await createLab({kubeProxy: false, pods: [...LAB_DIRECT_PODS, ...SPLIT_PODS]})
    server = await startApiServer({crds: ['crds/mapping.yaml']})
    dir = await mkdtemp(join(tmpdir(), 'smartnat-direct-'))
    await server.writeKubeconfig(join(dir, 'kubeconfig'))
    const objects = [
      service('web', [{name: 'http', protocol: 'tcp', port: 80, targetPort: 'http'}, {name: 'dns', protocol: 'udp', port: 53, targetPort: 'dns'}]),
      slice('web-a', 'web', [{name: 'http', protocol: 'tcp', port: 8080}, {name: 'dns', protocol: 'udp', port: 5353}], ready(PODS)),
      // The controller writes one slice per distinct port number a named targetPort resolves to.
      service('split', [{name: 'http', protocol: 'tcp', port: 80, targetPort: 'web'}]),
      slice('split-a', 'split', [{name: 'http', protocol: 'tcp', port: 8080}], ready([SPLIT_PODS[0]!.ip])),
      slice('split-b', 'split', [{name: 'http', protocol: 'tcp', port: 8081}], ready([SPLIT_PODS[1]!.ip])),
      service('idle', [{name: 'http', protocol: 'tcp', port: 80, targetPort: 'http'}, {name: 'dns', protocol: 'udp', port: 53, targetPort: 'dns'}]),
      slice('idle-a', 'idle', [{name: 'http', protocol: 'tcp', port: 8080}, {name: 'dns', protocol: 'udp', port: 5353}], []),
      mappingManifest(WEB) as KubeObject,
      mappingManifest(SPLIT) as KubeObject,
      mappingManifest(IDLE) as KubeObject,
    ]
    server.createAll(objects)
    metricsPort = await freePort()
    daemon = new WatchDaemon(
      [
        'watch',
        '--kubeconfig', join(dir, 'kubeconfig'),
        '--netns', lab.ns('host'),
        '--lock-file', join(dir, 'smartnat.lock'),
        '--backend', backend.name,
        '--metrics-addr', `127.0.0.1:${metricsPort}`,
        // No periodic pass in the middle of a test: each change is applied by the pass its event starts.
        '--resync', '60s',
        '--log-level', 'debug',
      ],
      // Bounds the daemon however the tests go; the suite ends it long before.
      600_000,
    )
    await withLog(eventually('/readyz 200', 30_000, async () => ((await httpGet(metricsPort, '/readyz')).status === 200 ? true : undefined)))
    await statusShows('web', PODS)
  })

  beforeEach(async () => {
    // A UDP request whose random source port an earlier one used would follow that one's conntrack
    // entry, not the rules: each test starts without remembered flows (it opens its held ones itself).
    await lab?.exec('host', 'conntrack', ['-F'])
  })

  after(async () => {
    // However the tests ended, the daemon and every process in the lab end with it.
    await daemon?.stop()
    await server?.stop()
    await lab?.destroy()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('spreads 300 TCP connections and 300 UDP flows over the three pods, at least 60 each', async () => {
    for (const protocol of ['tcp', 'udp'] as const) {
      const counts = countByPod(await requests(protocol, CLIENT_A, protocol === 'tcp' ? TCP_PORT : UDP_PORT, 300))
      expect(Object.keys(counts).sort(), `${protocol}: ${JSON.stringify(counts)}`).to.deep.equal(PODS)
      for (const pod of PODS) expect(counts[pod], `${protocol} connections to ${pod}: ${JSON.stringify(counts)}`).to.be.at.least(60)
    }
  })

  it('an endpoint marked not ready takes no new connection after one watch pass; its established ones keep working', async () => {
    await allReady()
    const [tcp, udp] = [await hold('tcp'), await hold('udp')]
    try {
      const tcpPod = podOf(await tcp.ask())
      const udpPod = podOf(await udp.ask())
      expect([tcpPod, udpPod]).to.satisfy((pods: string[]) => pods.every((p) => PODS.includes(p)))
      const notReady = [...new Set([tcpPod, udpPod])]
      await change(() => setWebEndpoints(PODS.map((ip) => ({ip, ready: !notReady.includes(ip), serving: !notReady.includes(ip), terminating: false}))))
      for (const protocol of ['tcp', 'udp'] as const) {
        const counts = countByPod(await requests(protocol, CLIENT_A, protocol === 'tcp' ? TCP_PORT : UDP_PORT, 60))
        expect(Object.keys(counts).sort(), `new ${protocol} connections: ${JSON.stringify(counts)}`).to.deep.equal(PODS.filter((p) => !notReady.includes(p)))
      }
      expect(podOf(await tcp.ask()), 'the established TCP connection').to.equal(tcpPod)
      expect(podOf(await udp.ask()), 'the established UDP flow').to.equal(udpPod)
    } finally {
      await Promise.all([tcp.close(), udp.close()])
    }
  })

  it('a deleted endpoint loses its established connections: TCP is broken, UDP is no longer answered by it', async () => {
    await allReady()
    const [tcp, udp] = [await hold('tcp'), await hold('udp')]
    try {
      const tcpPod = podOf(await tcp.ask())
      const udpPod = podOf(await udp.ask())
      const deleted = [...new Set([tcpPod, udpPod])]
      expect(deleted).to.satisfy((pods: string[]) => pods.every((p) => PODS.includes(p)))
      const kept = PODS.filter((p) => !deleted.includes(p))
      // Gone from the slice, the pod still runs: only smartnat can cut what it translated.
      await change(() => setWebEndpoints(ready(kept)))
      await statusShows('web', kept)
      const afterTcp = await tcp.ask()
      expect(afterTcp.ok, `the TCP connection to ${tcpPod} after its endpoint was deleted: ${JSON.stringify(afterTcp)}`).to.equal(false)
      expect(podOf(await udp.ask()), `the UDP flow that ${udpPod} answered`).to.not.equal(udpPod)
      expect(Object.keys(countByPod(await requests('tcp', CLIENT_A, TCP_PORT, 30))).sort()).to.deep.equal(kept)
    } finally {
      await Promise.all([tcp.close(), udp.close()])
    }
  })

  it('with no endpoint ready, the serving terminating ones still take new connections', async () => {
    await allReady()
    await change(() => setWebEndpoints(PODS.map((ip) => ({ip, ready: false, serving: true, terminating: true}))))
    for (const protocol of ['tcp', 'udp'] as const) {
      const counts = countByPod(await requests(protocol, CLIENT_A, protocol === 'tcp' ? TCP_PORT : UDP_PORT, 60))
      expect(Object.keys(counts).sort(), `${protocol}: ${JSON.stringify(counts)}`).to.deep.equal(PODS)
    }
  })

  it('with no endpoint at all, new connections are refused at once and the status says which port', async () => {
    await change(() => setWebEndpoints([]))
    // Refused within the request's second, not left to time out: a TCP reset, an ICMP port unreachable.
    expect(countByPod(await requests('tcp', CLIENT_A, TCP_PORT, 5))).to.deep.equal({refused: 5})
    expect(countByPod(await requests('udp', CLIENT_A, UDP_PORT, 5))).to.deep.equal({refused: 5})
    const ready = await withLog(eventually('the Ready condition to name the port', 10_000, () => {
      const found = condition('web', 'Ready')
      return found?.message.startsWith('no ready endpoints') ? found : undefined
    }))
    expect(ready.status).to.equal('False')
    expect(ready.message).to.match(new RegExp(`^no ready endpoints for port ${TCP_PORT}\\b`))
    expect(await requests('tcp', CLIENT_A, SPLIT_PORT, 1).then((r) => r[0]!.ok), 'the other Mapping still serves').to.equal(true)
  })

  it('with no endpoint at all, a client only eth2\'s reply table reaches is refused at once too: the refusal leaves by eth2', async () => {
    await withLog(eventually('the idle Mapping to be programmed without endpoints', 10_000, () =>
      condition('idle', 'Ready')?.message.startsWith('no ready endpoints') ? true : undefined,
    ))
    // The host's own TCP reset and ICMP port unreachable; by the main table they would leave by eth1
    // and be lost, and the requests would time out.
    const refused = async (protocol: LabProtocol) => countByPod(await lab!.requests(protocol, 'client2', CLIENT_2, EXT_2, IDLE_PORT, 3, {timeoutMs: 1000}))
    expect({tcp: await refused('tcp'), udp: await refused('udp')}).to.deep.equal({tcp: {refused: 3}, udp: {refused: 3}})
  })

  it('ClientIP affinity: 50 connections from one client reach one pod, for each client', async () => {
    await allReady()
    await change(() =>
      server!.api.patch(server!.types.services, 'default', 'web', PatchType.merge, {spec: {sessionAffinity: 'ClientIP', sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}}}),
    )
    const chosen: Record<string, string> = {}
    for (const client of [CLIENT_A, CLIENT_B]) {
      for (const protocol of ['tcp', 'udp'] as const) {
        const counts = countByPod(await requests(protocol, client, protocol === 'tcp' ? TCP_PORT : UDP_PORT, 50))
        expect(Object.keys(counts), `${protocol} from ${client}: ${JSON.stringify(counts)}`).to.have.lengthOf(1)
        expect(PODS).to.include(Object.keys(counts)[0])
        chosen[`${protocol} from ${client}`] = Object.keys(counts)[0]!
      }
    }
    // The pods the two clients stick to may or may not differ; shown for whoever reads the run.
    console.log(`      affinity: ${JSON.stringify(chosen)}`)
  })

  it('a named targetPort reaches each pod on its own port number', async () => {
    const results = await requests('tcp', CLIENT_A, SPLIT_PORT, 60)
    const seen = new Set(results.map((r) => (r.ok ? `${r.fields.pod}:${r.fields.port}` : r.error)))
    expect([...seen].sort()).to.deep.equal(SPLIT_PODS.map((p) => `${p.ip}:${p.tcp[0]}`))
  })
})
