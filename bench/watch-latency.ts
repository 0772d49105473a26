/**
 * The watch at scale, from a change in the Kubernetes API to the kernel written (root): N synthetic
 * Mappings in the test API server, which runs in a process of its own as kube-apiserver would (real
 * HTTP: list, watch, status writes), and in this process only the daemon's own pieces (KubeSource,
 * WatchLoop, the status publisher, ip monitor) over a throwaway network namespace. For each kind of
 * change, `--changes` of them one after the other, each an HTTP request to the API server as kubectl
 * would send it, timed from just before the request is sent to the end of the last kernel write of
 * the pass it caused; `--breakdown` also prints where that time went (bench/watch-breakdown.ts).
 *
 * Then, with `--idle S`, the CPU the watch uses over S seconds of no change but its periodic resync
 * (every 60 s, the default), its own and that of the kernel tools it runs (not the API server's), as
 * a share of one core.
 *
 * The daemon's pieces and the API server run inside the namespace (this script starts itself again
 * there with `--inside`), so the kernel tools start as on a host, without `ip netns exec` in front
 * of each; `--netns-exec` keeps them in this process and puts it in front of each tool, as before.
 *
 *   npm run bench:watch [-- --count N --changes N --mode service|direct --only iptables|nftables --idle S --breakdown --netns-exec]
 */
import {spawn} from 'node:child_process'
import {readFileSync, writeFileSync} from 'node:fs'
import type {Readable} from 'node:stream'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'
import {KubeConfig} from '@kubernetes/client-node'
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/registry.js'
import {launchingRunner} from '../src/lib/app/host.js'
import {HostChanges} from '../src/lib/host/host-changes.js'
import {ExecRunner} from '../src/lib/host/runner.js'
import {MAPPING_API_VERSION, type EndpointSliceResource} from '../src/lib/mapping/types.js'
import type {Ipv4} from '../src/lib/net/ipv4.js'
import {KubeSource} from '../src/lib/source/kube/source.js'
import {kubePublisher} from '../src/lib/sync/publish.js'
import {syncPass, WatchLoop, type SyncPass} from '../src/lib/sync/watch.js'
import {apiRequest, startApiServerProcess} from './apiserver-child.js'
import {addHostInterfaces, CountingRunner, createNamespace, runKernelBenchmark, type BenchNamespace, type CountedCall} from './netns.js'
import {printTable, printTargets, type Target} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticObjects, type Ports, type SyntheticMode} from './synthetic.js'
import {changeParts, PassClock, printBreakdown, type ChangeParts, type PassTimes} from './watch-breakdown.js'

const {values} = parseArgs({
  options: {
    count: {type: 'string', default: '10000'},
    changes: {type: 'string', default: '200'},
    mode: {type: 'string', default: 'service'},
    only: {type: 'string'},
    idle: {type: 'string', default: '0'},
    breakdown: {type: 'boolean', default: false},
    'netns-exec': {type: 'boolean', default: false},
    /** Each process started by the daemon's own fork, as before the kept shell (src/lib/host/launcher.ts). */
    'spawn-direct': {type: 'boolean', default: false},
    /** Internal: this process runs inside the namespace the parent made, for this backend, and hands its targets back on fd 3. */
    inside: {type: 'string'},
  },
})
const idleSeconds = Number(values.idle)
if (!(idleSeconds >= 0 && idleSeconds <= 3600)) throw new Error('--idle 0..3600 (seconds)')
const count = Number(values.count)
const changes = Number(values.changes)
const mode = values.mode as SyntheticMode
if (!(Number.isInteger(count) && count >= 10 && count <= 20_000)) throw new Error('--count 10..20000')
if (!(Number.isInteger(changes) && changes >= 1 && changes <= 1000)) throw new Error('--changes 1..1000')
if (mode !== 'service' && mode !== 'direct') throw new Error('--mode service|direct')
if (values.only !== undefined && !(BACKEND_NAMES as readonly string[]).includes(values.only)) throw new Error(`--only: one of ${BACKEND_NAMES.join(', ')}`)

const IDLE_CPU_TARGET_PERCENT = 10
const P50_TARGET_MS = 30
const P99_TARGET_MS = 100
/** Between two changes, after the pass of the first: the loop's minimum interval between passes is 100 ms. */
const GAP_MS = 120
const PASS_TIMEOUT_MS = 30_000
/** The first round of status writes has ended once no writeback has run for this long. */
const WRITEBACK_QUIET_MS = 2000
const KERNEL_WRITE = /^(iptables-restore|ipset|nft|ip)$/

/** One kind of change: the request that makes it through the API; `k` counts changes of that kind, from 0. */
interface ChangeKind {
  name: string
  make(k: number): Promise<void>
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!
}

/**
 * CPU seconds used so far by this process and by the children it has waited for (the kernel tools it
 * ran). Not the API server's: its process is waited for only once the figures are taken.
 */
function cpuSeconds(): number {
  const {user, system} = process.cpuUsage()
  // /proc/self/stat after the command name: fields 16 and 17 are the children's user and system clock ticks.
  const stat = readFileSync('/proc/self/stat', 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const ticks = Number(fields[13]) + Number(fields[14])
  return (user + system) / 1e6 + ticks / 100
}

function isKernelWrite(call: CountedCall): boolean {
  return KERNEL_WRITE.test(call.command) && (call.input !== undefined || (call.command === 'ipset' && call.args[0] === 'restore'))
}

/** The six kinds of change, each a request to the API server at `url` about the synthetic objects on `addresses`. */
function changeKinds(url: string, addresses: readonly Ipv4[]): ChangeKind[] {
  const objects = (i: number) => syntheticObjects(i, addresses, mode)
  const mappings = (namespace: string) => `/apis/${MAPPING_API_VERSION}/namespaces/${namespace}/mappings`
  const slicePath = ({metadata}: EndpointSliceResource) => `/apis/discovery.k8s.io/v1/namespaces/${metadata.namespace}/endpointslices/${metadata.name}`
  // Spread over the cluster, so that no change lands where the last one did.
  const target = (k: number) => (k * 7919) % count
  const endpoints = (slice: EndpointSliceResource) => slice.endpoints ?? []
  const extraPod = (k: number) => `198.19.255.${(k % 250) + 1}`
  const first = objects(0).mapping
  const namespace = first.metadata.namespace!
  const created = (k: number) => `bench-new-${k}`
  return [
    {
      name: 'endpoint added',
      make: (k) => {
        const {slice} = objects(target(k))
        return apiRequest(url, 'PATCH', slicePath(slice), {endpoints: [...endpoints(slice), {addresses: [extraPod(k)], conditions: {ready: true}}]})
      },
    },
    {
      name: 'endpoint removed',
      make: (k) => {
        const {slice} = objects(target(k))
        return apiRequest(url, 'PATCH', slicePath(slice), {endpoints: endpoints(slice)})
      },
    },
    {
      name: 'Mapping created',
      make: (k) => {
        const spec = first.spec!
        return apiRequest(url, 'POST', mappings(namespace), {
          apiVersion: MAPPING_API_VERSION,
          kind: 'Mapping',
          metadata: {namespace, name: created(k)},
          spec: {addresses: spec.addresses, serviceName: spec.serviceName, mode: spec.mode, ports: [{port: 60000 + k, protocol: 'tcp', servicePort: (spec.ports as Ports)[0]!.servicePort}]},
        })
      },
    },
    {
      name: 'Mapping updated',
      make: (k) => {
        const {mapping} = objects(target(k >> 1))
        const ports = mapping.spec!.ports as Ports
        // One port less, then back: the Service keeps serving every port asked for.
        const edited = k % 2 === 0 ? ports.slice(0, 1) : ports
        return apiRequest(url, 'PATCH', `${mappings(mapping.metadata.namespace!)}/${mapping.metadata.name}`, {spec: {ports: edited}})
      },
    },
    {
      name: 'Mapping deleted',
      make: (k) => apiRequest(url, 'DELETE', `${mappings(namespace)}/${created(k)}`),
    },
    {
      name: 'allow-list changed',
      make: (k) => {
        const {mapping} = objects(target(k))
        return apiRequest(url, 'PATCH', `${mappings(mapping.metadata.namespace!)}/${mapping.metadata.name}`, {spec: {allowedSources: [`198.18.${100 + (k % 100)}.0/24`]}})
      },
    },
  ]
}

/** The loop's status writebacks, to wait until the first round of them has ended. */
class WritebackTracker {
  private running = 0
  private ended = 0
  private lastActivity = performance.now()

  track(publishing: Promise<unknown>): Promise<void> {
    this.running++
    this.lastActivity = performance.now()
    return publishing.then(
      () => this.end(),
      (error: unknown) => {
        this.end()
        throw error
      },
    )
  }

  /** Resolves, with how long it waited, once a writeback has ended and none has run for WRITEBACK_QUIET_MS. */
  async quiet(): Promise<number> {
    const from = performance.now()
    while (this.ended === 0 || this.running > 0 || performance.now() - this.lastActivity < WRITEBACK_QUIET_MS) {
      if (performance.now() - from > PASS_TIMEOUT_MS * 10) throw new Error('the first status writeback did not end')
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    return performance.now() - from
  }

  private end(): void {
    this.running--
    this.ended++
    this.lastActivity = performance.now()
  }
}

interface KindFigures {
  name: string
  ms: number[]
  noWrite: number
  parts: ChangeParts[]
}

/** A namespace holding the synthetic host's interfaces, forwarding on. */
async function hostNamespace(name: BackendName): Promise<BenchNamespace> {
  const ns = await createNamespace(`lat${name.slice(0, 3)}`)
  await addHostInterfaces(ns, syntheticHost().host)
  await ns.runner.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
  return ns
}

/** Measures one backend: with `--netns-exec` in this process, otherwise in a process of its own started inside the namespace. */
async function benchBackend(name: BackendName, targets: Target[]): Promise<void> {
  const ns = await hostNamespace(name)
  try {
    if (values['netns-exec']) {
      await measureBackend(name, targets, ns.name)
      return
    }
    const script = fileURLToPath(import.meta.url)
    const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, ...process.execArgv, script, ...process.argv.slice(2), '--inside', name], {
      stdio: ['ignore', 'inherit', 'inherit', 'pipe'],
    })
    let handedBack = ''
    const handBack = child.stdio[3] as Readable
    handBack.setEncoding('utf8').on('data', (text: string) => (handedBack += text))
    const code = await new Promise<number | null>((resolve, reject) => child.once('error', reject).once('close', resolve))
    if (code !== 0) throw new Error(`the ${name} measurement inside ${ns.name} exited with ${code}`)
    targets.push(...(JSON.parse(handedBack) as Target[]))
  } finally {
    await ns.destroy()
  }
}

/** The watch's pieces and the API server in this process's namespace; with `netns`, each kernel tool is started in that one instead. */
async function measureBackend(name: BackendName, targets: Target[], netns?: string): Promise<void> {
  const {addresses} = syntheticHost()
  const server = await startApiServerProcess(count, mode)
  let loop: WatchLoop | undefined
  let hostChanges: HostChanges | undefined
  try {
    const kubeConfig = new KubeConfig()
    kubeConfig.loadFromString(server.kubeconfig)
    const runner = new CountingRunner(values['spawn-direct'] ? new ExecRunner({timeoutSeconds: 120, netns}) : launchingRunner({commandTimeoutSeconds: 120, netns}))
    hostChanges = new HostChanges(runner)
    hostChanges.start()
    const clock = new PassClock()
    const backend = createBackend(name, runner, {rendersAgain: true, longLived: true})
    const pass = syncPass({runner, backend: values.breakdown ? clock.timed(backend) : backend}, {plan: BENCH_PLAN_OPTIONS, interfacesPattern: /^ext\d+$/}, hostChanges)
    // Called with the times of each pass: a change is applied by the first pass that started after it.
    let passDone: ((times: PassTimes) => void) | undefined
    const timedPass: SyncPass = async (load, options) => {
      const {value, times} = await clock.around(() => pass(load, options))
      passDone?.(times)
      return value
    }
    const publisher = kubePublisher(kubeConfig, 'bench-host')
    const writebacks = new WritebackTracker()
    loop = new WatchLoop({
      source: new KubeSource(kubeConfig),
      sync: timedPass,
      afterSync: (report, signal) => writebacks.track(publisher.publish(report, new Date(), signal)),
      resyncIntervalMs: 60_000,
      hostChanges,
    })
    const firstPass = new Promise<void>((resolve) => (passDone = () => resolve()))
    const started = performance.now()
    await loop.start()
    await firstPass
    const startMs = performance.now() - started
    // Let the first round of status writes (one per Mapping, and an Event each) end before timing anything.
    const cpuAtFirstPass = cpuSeconds()
    const settledMs = await writebacks.quiet()
    const settleCpu = cpuSeconds() - cpuAtFirstPass

    // The client's first request loads and connects it: not part of any change.
    await apiRequest(server.url, 'GET', '/version')
    const figures: KindFigures[] = []
    for (const kind of changeKinds(server.url, addresses)) {
      const result: KindFigures = {name: kind.name, ms: [], noWrite: 0, parts: []}
      for (let k = 0; k < changes; k++) {
        await new Promise((resolve) => setTimeout(resolve, GAP_MS))
        runner.take()
        const at = performance.now()
        const done = new Promise<PassTimes>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`${kind.name} #${k}: no pass within ${PASS_TIMEOUT_MS} ms`)), PASS_TIMEOUT_MS)
          passDone = (times) => {
            if (times.startedAt < at) return
            clearTimeout(timer)
            resolve(times)
          }
        })
        const [, times] = await Promise.all([kind.make(k), done])
        passDone = undefined
        const writes = runner.take().filter((call) => isKernelWrite(call) && call.endedAt > at)
        if (writes.length === 0) result.noWrite++
        else result.ms.push(Math.max(...writes.map((call) => call.endedAt)) - at)
        const parts = values.breakdown ? changeParts(at, times, writes) : undefined
        if (parts) result.parts.push(parts)
      }
      figures.push(result)
    }

    console.log(
      `\n## ${name}, mode ${mode}, kernel tools ${netns === undefined ? 'started directly' : 'through ip netns exec'}${values['spawn-direct'] ? ' by the daemon' : ' by its kept shell'}: ${count.toLocaleString('en')} Mappings; first pass ${Math.round(startMs)} ms, its statuses written ${(settledMs / 1000).toFixed(1)} s later (${settleCpu.toFixed(1)} s of CPU); ${changes} changes of each kind, API call to kernel written\n`,
    )
    printTable(
      ['change', 'p50 ms', 'p99 ms', 'max ms', 'passes without a kernel write'],
      figures.map((f) => [f.name, percentile(f.ms, 50), percentile(f.ms, 99), Math.max(...f.ms), f.noWrite]),
    )
    if (values.breakdown) {
      console.log(`\nWhere the time went, ms, median per kind over the changes whose pass wrote to the kernel (medians do not add up; tool runs may overlap):\n`)
      printBreakdown(figures)
    }
    if (idleSeconds > 0) {
      const cpuBefore = cpuSeconds()
      const wallBefore = performance.now()
      await new Promise((resolve) => setTimeout(resolve, idleSeconds * 1000))
      const share = (100 * (cpuSeconds() - cpuBefore)) / ((performance.now() - wallBefore) / 1000)
      console.log(`\nIdle for ${idleSeconds} s with the periodic resync every 60 s: ${share.toFixed(2)} % of one core (this process and the kernel tools it ran; not the API server)`)
      targets.push({name: `${name}, mode ${mode}, at ${count}: CPU of a watch with nothing to do, over ${idleSeconds} s`, value: share, limit: IDLE_CPU_TARGET_PERCENT, unit: '% of a core'})
    }
    const all = figures.flatMap((f) => f.ms)
    targets.push({name: `${name}, mode ${mode}, at ${count}: API change to kernel, p50 over every kind`, value: percentile(all, 50), limit: P50_TARGET_MS, unit: 'ms'})
    targets.push({name: `${name}, mode ${mode}, at ${count}: API change to kernel, p99 over every kind`, value: percentile(all, 99), limit: P99_TARGET_MS, unit: 'ms'})
  } finally {
    await loop?.stop()
    await hostChanges?.stop()
    await server.stop()
  }
}

async function main(): Promise<boolean> {
  const targets: Target[] = []
  if (values.inside !== undefined) {
    if (!(BACKEND_NAMES as readonly string[]).includes(values.inside)) throw new Error(`--inside: one of ${BACKEND_NAMES.join(', ')}`)
    await measureBackend(values.inside as BackendName, targets)
    writeFileSync(3, JSON.stringify(targets))
    return true
  }
  for (const name of BACKEND_NAMES) if (values.only === undefined || values.only === name) await benchBackend(name, targets)
  console.log('')
  printTargets(targets)
  return true
}

await runKernelBenchmark(main)
