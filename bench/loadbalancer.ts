/**
 * smartnat as the load-balancer provider at scale (root): `--services` LoadBalancer Services of
 * smartnat's class created at once in the test API server (the real HTTP wire protocol), the compiled
 * `smartnat watch` in a throwaway network namespace whose external interface holds the pool's
 * addresses. Taken from the moment the Services exist:
 *
 * - until every Service has an address recorded in its status (the API server's copy says so);
 * - until the kernel carries traffic for them: the watch's metrics count every Service programmed, and
 *   a sample of addresses spread over the pool accepts real TCP connections from a client namespace
 *   (DNAT to the Service's ClusterIP, routed to a cluster namespace where a sink answers);
 * - the API requests the watch made meanwhile, counted at the API server stand-in, by verb and kind.
 *
 * Figures only; nothing here passes or fails on time.
 *
 *   npm run bench:loadbalancer [-- --services N --sample N]
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {LOAD_BALANCER_CLASS} from '../src/lib/mapping/loadbalancer.js'
import type {ServiceResource} from '../src/lib/mapping/types.js'
import {intToIpv4, ipv4ToInt, type Ipv4} from '../src/lib/net/ipv4.js'
import {startApiServer, type ApiServer, type KubeObject} from '../test/support/apiserver/index.js'
import {bucketOf} from '../test/support/apiserver/resources.js'
import {BUILD_DIR, buildCli, freePort, runCli} from './cli.js'
import {createNamespace, runKernelBenchmark, type BenchNamespace} from './netns.js'
import {printTable} from './report.js'

const {values} = parseArgs({options: {services: {type: 'string', default: '5000'}, sample: {type: 'string', default: '50'}}})
const count = Number(values.services)
const sampleSize = Math.min(Number(values.sample), count)
if (!(Number.isInteger(count) && count >= 1 && count <= 8000)) throw new Error('--services 1..8000')
if (!(Number.isInteger(sampleSize) && sampleSize >= 1 && sampleSize <= 1000)) throw new Error('--sample 1..1000')

/** Where the daemon serves its health and metrics; free when the benchmark starts. */
const HEALTH_PORT = await freePort()
const DEADLINE_MS = 600_000
const PROBE = fileURLToPath(new URL('tcp-probe.ts', import.meta.url))
const SINK = fileURLToPath(new URL('tcp-sink.ts', import.meta.url))
/** The client is the external subnet's gateway (its first host), so the watch's reply routes point at it. */
const CLIENT = '198.18.32.1'
const PREFIX = 19
const FIRST_ADDRESS = ipv4ToInt('198.18.32.10' as Ipv4)
/** One ClusterIP per Service, all local to the cluster namespace, where one sink on port 80 answers them all. */
const VIP_CIDR = '198.19.96.0/19'
const FIRST_VIP = ipv4ToInt('198.19.96.1' as Ipv4)
const HOST_INTERNAL = '198.18.4.1'
const CLUSTER = '198.18.4.2'
const WRITE = /^(POST|PUT|PATCH|DELETE) /

const poolAddress = (i: number) => intToIpv4(FIRST_ADDRESS + i)

/** Host (the watch), client and cluster namespaces: client -- ext0 -- host -- int0 -- cluster. */
async function topology(): Promise<{host: BenchNamespace; client: BenchNamespace; cluster: BenchNamespace}> {
  const [host, client, cluster] = [await createNamespace('lbhost'), await createNamespace('lbclient'), await createNamespace('lbcluster')]
  await host.ip([`link add ext0 type veth peer name ext0p netns ${client.name}`, `link add int0 type veth peer name int0p netns ${cluster.name}`, 'link set ext0 up', 'link set int0 up'])
  // Every address the Services can get, on the external interface: the watch programs only local addresses.
  const addresses = Array.from({length: count}, (_, i) => `addr add ${poolAddress(i)}/${PREFIX} dev ext0`)
  await host.ip([...addresses, `addr add ${HOST_INTERNAL}/24 dev int0`, `route add ${VIP_CIDR} via ${CLUSTER}`])
  await host.runner.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
  await client.ip([`addr add ${CLIENT}/${PREFIX} dev ext0p`, 'link set ext0p up'])
  await cluster.ip([`addr add ${CLUSTER}/24 dev int0p`, 'link set int0p up', `route add local ${VIP_CIDR} dev lo`])
  return {host, client, cluster}
}

function startIn(ns: BenchNamespace, script: string, args: string[]): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', script, ...args], {stdio: ['pipe', 'pipe', 'inherit']})
}

/** A prober in the client namespace: each call connects once to every address given. */
function prober(client: BenchNamespace): {probe: (addresses: readonly string[]) => Promise<{connected: number; failed: string[]}>; child: ChildProcess} {
  const child = startIn(client, PROBE, [String(DEADLINE_MS / 1000)])
  const lines = createInterface({input: child.stdout!})[Symbol.asyncIterator]()
  return {
    child,
    probe: async (addresses) => {
      child.stdin!.write(`80 ${addresses.join(' ')}\n`)
      const next = await lines.next()
      if (next.done) throw new Error('the prober exited')
      return JSON.parse(next.value) as {connected: number; failed: string[]}
    },
  }
}

async function metric(name: string, label: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${HEALTH_PORT}/metrics`)).text()
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes(label))
  return line === undefined ? 0 : Number(line.split(' ').pop())
}

async function ready(): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${HEALTH_PORT}/readyz`)).status === 200
  } catch {
    return false
  }
}

function lbService(i: number): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {name: `lb-${i}`, namespace: 'default'},
    spec: {type: 'LoadBalancer', loadBalancerClass: LOAD_BALANCER_CLASS, clusterIP: intToIpv4(FIRST_VIP + i), ports: [{name: 'http', port: 80, protocol: 'TCP', targetPort: 8080}]},
  } as unknown as KubeObject
}

/** The API requests logged (`METHOD URL ...`), counted by `METHOD resource[/subresource]`. */
function requestKinds(lines: readonly string[]): Map<string, number> {
  const kinds = new Map<string, number>()
  for (const line of lines) {
    const [method, url] = line.split(' ')
    // /api/v1/..., /apis/GROUP/VERSION/...; then namespaces/NS/ when namespaced; then RESOURCE[/NAME[/SUBRESOURCE]].
    const rest = (url ?? '').split('?')[0]!.replace(/^\/apis?\/(?:[^/]+\/)?v[^/]+\//, '').replace(/^namespaces\/[^/]+\/(?=[^/]+)/, '')
    const [resource, , sub] = rest.split('/')
    const key = `${method} ${resource}${sub ? `/${sub}` : ''}`
    kinds.set(key, (kinds.get(key) ?? 0) + 1)
  }
  return kinds
}

async function waitFor(what: string, started: number, check: () => Promise<boolean> | boolean): Promise<number> {
  while (!(await check())) {
    if (performance.now() - started > DEADLINE_MS) throw new Error(`${what}: not within ${DEADLINE_MS / 1000} s`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return performance.now() - started
}

async function main(): Promise<boolean> {
  buildCli()
  const requests: {at: number; line: string}[] = []
  const server: ApiServer = await startApiServer({crds: ['crds/mapping.yaml', 'crds/addresspool.yaml'], log: (line) => requests.push({at: performance.now(), line})})
  const services = server.types.services
  server.api.create(server.types.namespaces, undefined, {metadata: {name: 'smartnat-system'}} as unknown as KubeObject)
  server.api.create(server.types.addressPools, undefined, {
    metadata: {name: 'bench'},
    spec: {addresses: [`${poolAddress(0)}-${poolAddress(count - 1)}`]},
  } as unknown as KubeObject)
  const {host, client, cluster} = await topology()
  const sink = startIn(cluster, SINK, ['0.0.0.0', '80', String(DEADLINE_MS / 1000)])
  const {probe, child: probeChild} = prober(client)
  try {
    const kubeconfig = join(BUILD_DIR, 'loadbalancer.kubeconfig')
    writeFileSync(kubeconfig, server.kubeconfig())
    const step = Math.max(1, Math.floor(count / sampleSize))
    const sample = Array.from({length: sampleSize}, (_, k) => poolAddress(Math.min(count - 1, k * step)))
    let addressedMs = NaN
    let programmedMs = NaN
    let trafficMs = NaN
    let probes = 0
    let writes = new Map<string, number>()
    let reads = 0
    const watch = await runCli(
      ['watch', '--kubeconfig', kubeconfig, '--netns', host.name, '--interfaces', '^ext0$', '--lock-file', join(BUILD_DIR, `lock-${host.name}`), '--metrics-addr', `127.0.0.1:${HEALTH_PORT}`, '--resync', '60s', '--log-level', 'warn'],
      {
        ready,
        timeoutMs: DEADLINE_MS + 120_000,
        whileRunning: async () => {
          // The allocator Lease taken and the first passes over: only what the Services cause is counted.
          const leases = server.types.leases
          await waitFor('the allocator Lease', performance.now(), () => {
            try {
              return server.api.get(leases, 'smartnat-system', 'smartnat-allocator') !== undefined
            } catch {
              return false
            }
          })
          await new Promise((resolve) => setTimeout(resolve, 2000))
          const from = requests.length
          const started = performance.now()
          for (let i = 0; i < count; i++) server.api.create(services, 'default', lbService(i))
          // The stored objects themselves, not a copied list: the API server shares this process, and copying
          // every Service at each poll would slow down the very writes being timed.
          const bucket = bucketOf(services)
          const addressed = () => server.store.listShared(bucket, 'default').filter((s) => (s as unknown as ServiceResource).status?.loadBalancer?.ingress?.[0]?.ip !== undefined).length === count
          const trafficFlows = async () => {
            probes++
            return (await probe(sample)).failed.length === 0
          }
          ;[addressedMs, programmedMs, trafficMs] = await Promise.all([
            waitFor('every Service addressed', started, addressed),
            waitFor('every Service programmed', started, async () => (await metric('smartnat_mappings', 'state="configured"')) >= count),
            waitFor('traffic to the sample', started, trafficFlows),
          ])
          // Writes the allocation causes after the last address was recorded (pool status, Events) count too.
          await new Promise((resolve) => setTimeout(resolve, 3000))
          const during = requests.slice(from).map((r) => r.line)
          writes = requestKinds(during.filter((line) => WRITE.test(line)))
          reads = during.length - [...writes.values()].reduce((a, b) => a + b, 0)
        },
      },
    )
    const recorded = server.api.list(services, 'default', {}).items.map((s) => (s as unknown as ServiceResource).status?.loadBalancer?.ingress?.[0]?.ip)
    const distinct = new Set(recorded.filter((ip) => ip !== undefined)).size
    console.log(`\n# LoadBalancer Services: ${count.toLocaleString('en')} created at once, one smartnat watch (iptables), test API server\n`)
    printTable(
      ['from the Services created, until', 'ms'],
      [
        ['every Service has an address in its status', addressedMs],
        ['the watch has programmed every Service (smartnat_mappings{state="configured"})', programmedMs],
        [`TCP connections to ${sampleSize} sample addresses all succeed (${probes} probe rounds)`, trafficMs],
      ],
    )
    const total = [...writes.values()].reduce((a, b) => a + b, 0)
    console.log(`\nAPI writes by the watch from the creation until 3 s after the last figure: ${total} (reads and watch requests: ${reads})\n`)
    printTable(['request', 'count'], [...writes.entries()].sort((a, b) => b[1] - a[1]))
    console.log(`\n${distinct} distinct addresses recorded for ${count} Services; watch peak RSS ${watch.rssMb.toFixed(0)} MB`)
    return distinct === count
  } finally {
    probeChild.stdin!.end()
    probeChild.kill('SIGKILL')
    sink.kill('SIGKILL')
    await Promise.all([host.destroy(), client.destroy(), cluster.destroy()])
    await server.stop()
  }
}

await runKernelBenchmark(main)
