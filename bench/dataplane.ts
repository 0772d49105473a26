/**
 * Data-plane benchmark (root): new TCP connections per second through the host's DNAT to the
 * last-added Mapping, with 10,000 Mappings loaded vs 1, for smartnat's layout (dispatch by address,
 * then port; one shared allow-list set) and for the original controller's layout (one rule with
 * its own set match per Mapping in a single chain).
 *
 *   client ns: c0 198.18.0.1/24 (the host's gateway), source 198.18.X.2/32 on lo
 *      |
 *   host ns:   ext1 198.18.0.10..109/24, cl0 198.18.4.1/24, ip_forward=1
 *      |
 *   node ns:   n0 198.18.4.2/24, the Service VIP /32 on lo, a TCP sink on VIP:servicePort
 *
 * The nftables backend is measured the same way, side by side.
 *
 *   npm run bench:dataplane
 */
import {spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {applyIptables} from '../src/lib/backend/iptables/apply.js'
import {renderIptables} from '../src/lib/backend/iptables/render.js'
import {nftablesBackend} from '../src/lib/backend/nftables/backend.js'
import {DEFAULT_PLAN_OPTIONS, type NatModel, type PlanOptions} from '../src/lib/plan/model.js'
import {plan} from '../src/lib/plan/plan.js'
import {addHostInterfaces, createNamespace, kernelUnavailableReason, type BenchNamespace} from './netns.js'
import {originalLayoutPayloads} from './original.js'
import {median, printTable, printTargets} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticEndpoint, syntheticHost, syntheticSnapshot} from './synthetic.js'

const SECONDS = 3
const CONCURRENCY = 64
const SETTLE_MS = 3000
const ROUNDS = 3
const COUNTS = [1, 10_000] as const
type Layout = 'smartnat' | 'nftables' | 'original'

const LOAD = fileURLToPath(new URL('tcp-connect-load.ts', import.meta.url))
const SINK = fileURLToPath(new URL('tcp-sink.ts', import.meta.url))

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
  if (layout === 'smartnat') {
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

function runIn(ns: BenchNamespace, script: string, args: string[]): {stdout: Promise<string>; kill(): void} {
  const child = spawn('ip', ['netns', 'exec', ns.name, process.execPath, '--import', 'tsx', script, ...args], {stdio: ['ignore', 'pipe', 'inherit']})
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  return {
    stdout: new Promise((resolve, reject) => child.once('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`${script} exited with ${code}`))))),
    kill: () => child.kill('SIGKILL'),
  }
}

async function waitForLine(ns: BenchNamespace, vip: string, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const {stdout} = await ns.runner.run('ss', ['-Hltn', `src ${vip}:${port}`])
    if (stdout.trim()) return
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  throw new Error(`nothing listens on ${vip}:${port} in ${ns.name}`)
}

/** Connections per second to the last-added (or first-added) of `count` Mappings, with `layout` loaded. */
async function measure(layout: Layout, count: number, target: 'last' | 'first' = 'last', options: PlanOptions = DEFAULT_PLAN_OPTIONS): Promise<{rate: number; failed: number}> {
  const {host: hostInfo, addresses} = syntheticHost({interfaces: 1})
  const model = plan(syntheticSnapshot(count, addresses), hostInfo, options).model
  // The last-added Mapping sits on the last address and has its highest ports: the longest walk.
  const last = syntheticEndpoint(target === 'last' ? count - 1 : 0, addresses)
  const source = last.sources[0].replace(/\.0\/24$/, '.2')
  const topology = await buildTopology(`dp${layout[0]}${count}${target[0]}${options.snat ? 's' : ''}`)
  try {
    const {client, host, node} = topology
    await loadLayout(host, layout, model)
    // Loading 10,000 Mappings leaves this process with garbage that V8 collects on background
    // threads; on a 2-core machine that would steal CPU from the measurement, so let it settle.
    await new Promise((resolve) => setTimeout(resolve, SETTLE_MS))
    await client.ip([`addr add ${source}/32 dev lo`])
    await node.ip([`addr add ${last.vip}/32 dev lo`])
    const sink = runIn(node, SINK, [last.vip, String(last.servicePorts[0]), String(SECONDS + 30)])
    // The sink is killed once measured; only a failure before that would matter, and waitForLine reports it.
    sink.stdout.catch(() => {})
    try {
      await waitForLine(node, last.vip, last.servicePorts[0])
      const load = runIn(client, LOAD, [source, last.address, String(last.ports[0]), String(SECONDS), String(CONCURRENCY)])
      const result = JSON.parse(await load.stdout) as {connected: number; failed: number; seconds: number}
      if (result.connected === 0) throw new Error(`${layout} with ${count}: no connection got through (${result.failed} failed)`)
      return {rate: result.connected / result.seconds, failed: result.failed}
    } finally {
      sink.kill()
    }
  } finally {
    for (const ns of Object.values(topology)) await ns.destroy()
  }
}

interface Config {
  label: string
  layout: Layout
  target: 'last' | 'first'
  options: PlanOptions
}

const CONFIGS: Config[] = [
  {label: 'smartnat iptables', layout: 'smartnat', target: 'last', options: DEFAULT_PLAN_OPTIONS},
  {label: 'original layout', layout: 'original', target: 'last', options: DEFAULT_PLAN_OPTIONS},
  {label: 'smartnat nftables backend', layout: 'nftables', target: 'last', options: DEFAULT_PLAN_OPTIONS},
  // Found after the fewest rules: the gap to the last-added one is the cost of walking rules.
  {label: 'smartnat iptables, first-added Mapping', layout: 'smartnat', target: 'first', options: DEFAULT_PLAN_OPTIONS},
  // With --snat every new connection also meets one egress rule (with a set lookup) per address.
  {label: 'smartnat iptables --snat', layout: 'smartnat', target: 'last', options: BENCH_PLAN_OPTIONS},
]

async function main(): Promise<boolean> {
  const rates = new Map<string, number[]>()
  let failed = 0
  // Rounds interleave the configurations, so a noisy moment on the machine hits all of them alike.
  for (let round = 0; round < ROUNDS; round++) {
    for (const config of CONFIGS) {
      for (const count of COUNTS) {
        const result = await measure(config.layout, count, count === 1 ? 'last' : config.target, config.options)
        const key = `${config.label} ${count}`
        rates.set(key, [...(rates.get(key) ?? []), result.rate])
        failed += result.failed
      }
    }
  }
  const rows = CONFIGS.map((config) => {
    const one = median(rates.get(`${config.label} 1`)!)
    const many = median(rates.get(`${config.label} 10000`)!)
    return {label: config.label, one, many, ratio: many / one}
  })
  console.log(`New TCP connections/s to the last-added Mapping: medians of ${ROUNDS} rounds, ${SECONDS} s each, ${CONCURRENCY} in flight; ${failed} connections failed`)
  printTable(['layout', '1 Mapping', '10,000 Mappings', 'ratio 10,000/1'], rows.map((r) => [r.label, r.one, r.many, r.ratio]))
  const [ours, original, nft] = rows
  console.log(`smartnat / original layout at 10,000: ${(ours!.many / original!.many).toFixed(1)}x`)
  return printTargets([
    {name: 'smartnat iptables (default options): rate with 10,000 / rate with 1', value: ours!.ratio, limit: 0.8, unit: '', atLeast: true},
    {name: 'smartnat nftables (default options): rate with 10,000 / rate with 1', value: nft!.ratio, limit: 0.8, unit: '', atLeast: true},
  ])
}

const reason = kernelUnavailableReason()
if (reason) {
  if (process.env.CI) throw new Error(`${reason}; CI must run it`)
  console.log(`skipped: ${reason}`)
} else {
  process.exitCode = (await main()) ? 0 : 1
}
