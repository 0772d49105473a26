/**
 * The data-plane benchmarks' rig: for a configuration (layout, --snat, mode), two topologies side by
 * side, one holding 1 Mapping and one 10,000, a TCP sink behind the last-added Mapping's target and a
 * load generator in front of it; short bursts alternate between them (1, 10,000, 10,000, 1, ...), and
 * each pair of neighbouring bursts gives one ratio of rates and one of CPU time per connection.
 * Used by bench/dataplane.ts (service mode and the original layout) and bench/direct.ts (mode direct).
 *
 *   client ns: c0 198.18.0.1/24 (the host's gateway), source 198.18.X.2/32 on lo
 *      |
 *   host ns:   ext1 198.18.0.10..109/24, cl0 198.18.4.1/24, ip_forward=1
 *      |
 *   node ns:   n0 198.18.4.2/24; mode service: the Service VIP /32 on lo, a TCP sink on VIP:servicePort;
 *              mode direct: the Mapping's three pods /32 on lo, a TCP sink on their port
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {readFileSync, readdirSync} from 'node:fs'
import {createInterface} from 'node:readline'
import {fileURLToPath} from 'node:url'
import {applyIptables} from '../src/lib/backend/iptables/apply.js'
import {renderIptables} from '../src/lib/backend/iptables/render.js'
import {nftablesBackend} from '../src/lib/backend/nftables/backend.js'
import {DEFAULT_PLAN_OPTIONS, type NatModel} from '../src/lib/plan/model.js'
import {plan} from '../src/lib/plan/plan.js'
import {addHostInterfaces, createNamespace, type BenchNamespace} from './netns.js'
import {originalLayoutPayloads} from './original.js'
import {format, median, printTable, type Target} from './report.js'
import {POD_PORT, directPods, syntheticEndpoint, syntheticHost, syntheticSnapshot, type SyntheticMode} from './synthetic.js'

const CONCURRENCY = 64
const SETTLE_MS = 3000
/** Everything a rig starts ends by itself after this long, whatever happens to this process. */
const LIFETIME_SECONDS = 600
type Layout = 'iptables' | 'nftables' | 'original'

const LOAD = fileURLToPath(new URL('tcp-connect-load.ts', import.meta.url))
const SINK = fileURLToPath(new URL('tcp-sink.ts', import.meta.url))

export interface Config {
  label: string
  layout: Layout
  snat: boolean
  /** Default service. */
  mode?: SyntheticMode
  /** The least acceptable ratio of the cost of a connection with 1 Mapping to its cost with 10,000. */
  target?: number
}

export interface RunOptions {
  rounds: number
  pairs: number
  seconds: number
  /** Measure the first-added Mapping instead of the last-added one. */
  first: boolean
  /** Mappings of the larger topology (the benchmarks' figure is 10,000; less only for a smoke run). */
  count: number
}

interface Topology {
  client: BenchNamespace
  host: BenchNamespace
  node: BenchNamespace
}

async function buildTopology(tag: string): Promise<Topology> {
  const made: BenchNamespace[] = []
  try {
    const client = await createNamespace(`${tag}-c`)
    made.push(client)
    const host = await createNamespace(`${tag}-h`)
    made.push(host)
    const node = await createNamespace(`${tag}-n`)
    made.push(node)
    await addHostInterfaces(host, syntheticHost({interfaces: 1}).host)
    await host.ip([`link set ext1p netns ${client.name}`, `link add cl0 type veth peer name n0 netns ${node.name}`, 'addr add 198.18.4.1/24 dev cl0', 'link set cl0 up'])
    await client.ip(['link set ext1p name c0', 'addr add 198.18.0.1/24 dev c0', 'link set c0 up'])
    await node.ip(['addr add 198.18.4.2/24 dev n0', 'link set n0 up', 'route add default via 198.18.4.1'])
    for (const [ns, settings] of [
      [host, ['net.ipv4.ip_forward=1', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0', 'net.ipv4.conf.ext1.rp_filter=0']],
      [client, ['net.ipv4.ip_local_port_range=1024 65000']],
    ] as const) {
      for (const setting of settings) await ns.runner.run('sysctl', ['-q', '-w', setting])
    }
    // Replies of the original layout follow the main table; smartnat's follow table 7001 to the same gateway.
    await host.ip(['route add 198.19.0.0/16 via 198.18.4.2', 'route add default via 198.18.0.1'])
    return {client, host, node}
  } catch (error) {
    for (const ns of made) await ns.destroy()
    throw error
  }
}

async function loadLayout(host: BenchNamespace, layout: Layout, model: NatModel): Promise<void> {
  if (layout === 'iptables') {
    await applyIptables(host.runner, renderIptables(model))
    return
  }
  if (layout === 'nftables') {
    const backend = nftablesBackend(host.runner)
    await backend.apply(backend.render(model))
    return
  }
  const {ipset, iptables} = originalLayoutPayloads(model)
  await host.runner.run('ipset', ['restore'], {input: ipset})
  await host.runner.run('iptables-restore', ['--noflush', '--wait'], {input: iptables})
}

function startIn(ns: BenchNamespace, script: string, args: string[]): ChildProcess {
  // `ip netns exec` execs node in place, so the child's pid is node's, whose CPU time /proc shows.
  return spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', script, ...args], {stdio: ['pipe', 'pipe', 'inherit']})
}

async function waitForListener(ns: BenchNamespace, ip: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const {stdout} = await ns.runner.run('ss', ['-Hltn', `src ${ip}:${port}`])
    if (stdout.trim()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`nothing listens on ${ip}:${port} in ${ns.name}`)
}

/** CPU seconds (user + system) a process has used so far. */
function processCpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /, '').split(' ')
  // After the command name: state is field 3, utime and stime are fields 14 and 15 (clock ticks of 1/100 s).
  return (Number(fields[11]) + Number(fields[12])) / 100
}

/**
 * The per-CPU softirq threads. Packets a process sends are mostly processed (NAT included) in that
 * process's context, and its CPU time counts that work; what the kernel defers counts here.
 */
function softirqThreads(): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('ksoftirqd/')
      } catch {
        return false
      }
    })
    .map(Number)
}

/** Busy and total CPU time of the whole machine so far, in clock ticks. */
function machineTicks(): {busy: number; total: number} {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/)
  const ticks = values.map(Number)
  const total = ticks.reduce((a, b) => a + b, 0)
  return {busy: total - ticks[3]! - ticks[4]!, total}
}

interface Burst {
  rate: number
  failed: number
  /** CPU time per connection, in microseconds: the load generator, the sink and the softirq threads. */
  cpuPerConnection: number
  /** Share of one core the load generator used. */
  clientCpu: number
  /** Share of one core the sink used. */
  sinkCpu: number
  /** Share of all cores busy, with whatever else ran on the machine. */
  machineBusy: number
}

/** One topology with a layout loaded, a sink behind the VIP and a load generator waiting for bursts. */
interface Rig {
  burst(seconds: number): Promise<Burst>
  close(): Promise<void>
}

async function startRig(config: Config, count: number, round: number, softirq: number[], first: boolean): Promise<Rig> {
  const {host: hostInfo, addresses} = syntheticHost({interfaces: 1})
  const direct = config.mode === 'direct'
  const model = plan(syntheticSnapshot(count, addresses, config.mode), hostInfo, {...DEFAULT_PLAN_OPTIONS, snat: config.snat}).model
  // The last-added Mapping sits on the last address and has its highest ports: the longest walk.
  const index = first ? 0 : count - 1
  const target = syntheticEndpoint(index, addresses)
  const source = target.sources[0].replace(/\.0\/24$/, '.2')
  // Mode direct: the pods of the Mapping, all listening on one port; mode service: the Service VIP.
  const listen = direct ? {addresses: directPods(index), ip: '0.0.0.0', port: POD_PORT} : {addresses: [target.vip], ip: target.vip, port: target.servicePorts[0]}
  const topology = await buildTopology(`dp${config.layout[0]}${config.snat ? 's' : ''}${direct ? 'd' : ''}${count}-${round}`)
  const children: ChildProcess[] = []
  const close = async () => {
    for (const child of children) child.kill('SIGKILL')
    for (const ns of Object.values(topology)) await ns.destroy()
  }
  try {
    const {client, host, node} = topology
    await loadLayout(host, config.layout, model)
    await client.ip([`addr add ${source}/32 dev lo`])
    await node.ip(listen.addresses.map((address) => `addr add ${address}/32 dev lo`))
    const sink = startIn(node, SINK, [listen.ip, String(listen.port), String(LIFETIME_SECONDS)])
    children.push(sink)
    await waitForListener(node, listen.ip, listen.port)
    const load = startIn(client, LOAD, [source, target.address, String(target.ports[0]), String(CONCURRENCY), String(LIFETIME_SECONDS)])
    children.push(load)
    const answers = createInterface({input: load.stdout!})[Symbol.asyncIterator]()
    return {
      async burst(seconds) {
        const kernel = () => softirq.reduce((sum, pid) => sum + processCpuSeconds(pid), 0)
        const before = {client: processCpuSeconds(load.pid!), sink: processCpuSeconds(sink.pid!), kernel: kernel(), machine: machineTicks()}
        load.stdin!.write(`${seconds}\n`)
        const answer = await answers.next()
        if (answer.done) throw new Error(`${config.label} with ${count}: the load generator exited`)
        const result = JSON.parse(answer.value) as {connected: number; failed: number; seconds: number}
        if (result.connected === 0) throw new Error(`${config.label} with ${count}: no connection got through (${result.failed} failed)`)
        const machine = machineTicks()
        const client = processCpuSeconds(load.pid!) - before.client
        const sinkCpu = processCpuSeconds(sink.pid!) - before.sink
        return {
          rate: result.connected / result.seconds,
          failed: result.failed,
          cpuPerConnection: ((client + sinkCpu + kernel() - before.kernel) / result.connected) * 1e6,
          clientCpu: client / result.seconds,
          sinkCpu: sinkCpu / result.seconds,
          machineBusy: (machine.busy - before.machine.busy) / (machine.total - before.machine.total),
        }
      },
      close,
    }
  } catch (error) {
    await close()
    throw error
  }
}

export interface Samples {
  one: Burst[]
  many: Burst[]
  /** Rate with 10,000 / rate with 1, per pair of neighbouring bursts. */
  ratios: number[]
  /** CPU per connection with 1 / with 10,000, per pair: the rate ratio a machine doing nothing else would see. */
  cpuRatios: number[]
}

/** Both sizes side by side, bursts alternating 1, 10,000, 10,000, 1, ... so a trend in the machine's load hits both alike. */
async function measure(config: Config, round: number, options: RunOptions, samples: Samples): Promise<void> {
  const {pairs, seconds, first, count} = options
  const softirq = softirqThreads()
  const one = await startRig(config, 1, round, softirq, first)
  try {
    const many = await startRig(config, count, round, softirq, first)
    try {
      // Loading 10,000 Mappings leaves this process with garbage that V8 collects on background
      // threads; on a 2-core machine that would steal CPU from the measurement, so let it settle.
      await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
      await one.burst(1)
      await many.burst(1)
      for (let pair = 0; pair < pairs; pair++) {
        const order = pair % 2 === 0 ? [one, many] : [many, one]
        const results = new Map<Rig, Burst>()
        for (const rig of order) results.set(rig, await rig.burst(seconds))
        samples.one.push(results.get(one)!)
        samples.many.push(results.get(many)!)
        samples.ratios.push(results.get(many)!.rate / results.get(one)!.rate)
        samples.cpuRatios.push(results.get(one)!.cpuPerConnection / results.get(many)!.cpuPerConnection)
      }
    } finally {
      await many.close()
    }
  } finally {
    await one.close()
  }
}

function percent(share: number): string {
  return `${Math.round(share * 100)} %`
}

/** Every configuration measured in `rounds` rounds that interleave them, so a noisy stretch on the machine hits all of them alike. */
export async function runDataplane(configs: readonly Config[], options: RunOptions): Promise<Map<Config, Samples>> {
  const samples = new Map(configs.map((c) => [c, {one: [], many: [], ratios: [], cpuRatios: []} as Samples]))
  for (let round = 0; round < options.rounds; round++) {
    for (const config of configs) await measure(config, round, options, samples.get(config)!)
  }
  return samples
}

/** One configuration's medians, as the reports print them. */
export interface DataplaneRow {
  config: Config
  /** Median of CPU per connection with 1 / with the larger count. */
  cpuRatio: number
  /** Median rate with the larger count. */
  many: number
}

/** Prints the rates and the CPU time per connection of every configuration; one row per configuration for the caller's targets. */
export function printDataplane(samples: Map<Config, Samples>, options: RunOptions): DataplaneRow[] {
  const {rounds, pairs, seconds, first} = options
  const many = options.count.toLocaleString('en')
  const all = [...samples.values()]
  const failed = all.flatMap((s) => [...s.one, ...s.many]).reduce((sum, b) => sum + b.failed, 0)
  console.log(
    `New TCP connections/s to the ${first ? 'first' : 'last'}-added Mapping, ${CONCURRENCY} in flight: ${rounds} rounds x ${pairs} pairs of ${seconds} s bursts, ` +
      `1 and ${many} Mappings alternating; medians, ratio range over the pairs; ${failed} connections failed`,
  )
  const range = (values: number[]) => `${format(Math.min(...values))}–${format(Math.max(...values))}`
  const rows = [...samples.entries()].map(([config, s]) => {
    const bursts = [...s.one, ...s.many]
    return {
      config,
      cpuRatio: median(s.cpuRatios),
      many: median(s.many.map((b) => b.rate)),
      rates: [config.label, median(s.one.map((b) => b.rate)), median(s.many.map((b) => b.rate)), median(s.ratios), range(s.ratios)],
      cpu: [
        config.label,
        median(s.one.map((b) => b.cpuPerConnection)),
        median(s.many.map((b) => b.cpuPerConnection)),
        median(s.cpuRatios),
        range(s.cpuRatios),
        percent(median(bursts.map((b) => b.clientCpu))),
        percent(median(bursts.map((b) => b.sinkCpu))),
        percent(median(bursts.map((b) => b.machineBusy))),
      ],
    }
  })
  printTable(['layout', '1 Mapping', `${many} Mappings`, `ratio ${many}/1`, 'ratio range'], rows.map((r) => r.rates))
  console.log('\nCPU time per connection (load generator + sink + softirq threads), in microseconds, and the share of a core each side used:')
  printTable(
    ['layout', '1 Mapping', `${many} Mappings`, `ratio 1/${many}`, 'ratio range', 'client CPU', 'sink CPU', 'machine busy'],
    rows.map((r) => r.cpu),
  )
  return rows.map(({config, cpuRatio, many}) => ({config, cpuRatio, many}))
}

/** The configurations' targets: CPU per connection with 1 Mapping / with `count`, at least their `target`. */
export function dataplaneTargets(rows: readonly DataplaneRow[], count: number): Target[] {
  const many = count.toLocaleString('en')
  return rows
    .filter((r) => r.config.target !== undefined)
    .map((r) => ({name: `${r.config.label}: CPU per connection with 1 / with ${many}`, value: r.cpuRatio, limit: r.config.target!, unit: '', atLeast: true}))
}
