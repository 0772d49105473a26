/**
 * The watch loop holding N synthetic Mappings in a network namespace, in a process of its own so
 * its peak RSS is the watch's alone: a first pass (reads the kernel), passes after single-Mapping
 * changes (trusting the state applied last), then a periodic resync (reads the kernel again).
 * Prints `{"firstMs":..,"changeMs":..,"changes":..,"resyncMs":..,"rssMb":..}`. Started, compiled, by bench/kernel.ts.
 *
 *   node --import tsx bench/watch-rss.ts NETNS iptables|nftables COUNT
 */
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/registry.js'
import {ExecRunner} from '../src/lib/host/runner.js'
import type {Snapshot} from '../src/lib/plan/model.js'
import {limitHeapGrowth} from '../src/lib/app/heap.js'
import {WatchLoop, syncPass, type SyncPass} from '../src/lib/sync/watch.js'
import {BenchSource} from './bench-source.js'
import {median, peakRssMb} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticPods, syntheticSnapshot, withPorts, withSlice} from './synthetic.js'

const RESYNC_MS = 15_000

// As `smartnat watch` does when it starts.
limitHeapGrowth()

const [netns, name, countText] = process.argv.slice(2)
if (!netns?.startsWith('snb-') || !BACKEND_NAMES.includes(name as BackendName) || !countText) {
  throw new Error('usage: watch-rss.ts snb-NAMESPACE iptables|nftables COUNT')
}

const {addresses} = syntheticHost()
const count = Number(countText)
const last = count - 1
const base = syntheticSnapshot(count, addresses)
const changes: Snapshot[] = [
  withSlice(base, last, [...syntheticPods(last), syntheticPods(last, 2)[0]]),
  base,
  withPorts(base, last, (ports) => [...ports, {port: 60000, protocol: 'tcp', servicePort: ports[0]!.servicePort}]),
  base,
  {...base, mappings: base.mappings.filter((_, i) => i !== last)},
  base,
]

const runner = new ExecRunner({timeoutSeconds: 120, netns})
const pass = syncPass({runner, backend: createBackend(name as BackendName, runner, {rendersAgain: true})}, {plan: BENCH_PLAN_OPTIONS, interfacesPattern: /^ext\d+$/})
const passes: {ms: number; read: boolean}[] = []
let passDone: (() => void) | undefined
const timedPass: SyncPass = async (load, options) => {
  const started = performance.now()
  const report = await pass(load, options)
  passes.push({ms: performance.now() - started, read: options.assumeActual === undefined})
  return report
}
const nextPass = () => new Promise<void>((resolve) => (passDone = resolve))

const source = new BenchSource(base)
const loop = new WatchLoop({source, sync: timedPass, resyncIntervalMs: RESYNC_MS, afterSync: () => passDone?.()})
const first = nextPass()
await loop.start()
await first
for (const snapshot of changes) {
  const done = nextPass()
  source.replace(snapshot)
  await done
}
// Nothing changes now: the next pass is the periodic resync, which reads the kernel.
await nextPass()
await loop.stop()

const changed = passes.slice(1, 1 + changes.length)
if (!passes[0]!.read || changed.some((p) => p.read) || !passes.at(-1)!.read) throw new Error(`unexpected reads: ${JSON.stringify(passes)}`)
console.log(
  JSON.stringify({
    firstMs: passes[0]!.ms,
    changeMs: median(changed.map((p) => p.ms)),
    changes: changed.length,
    resyncMs: passes.at(-1)!.ms,
    rssMb: peakRssMb(),
  }),
)
