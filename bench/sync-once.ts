/**
 * One plan + render + apply of N synthetic Mappings into a network namespace, in a process of its
 * own so its peak RSS is the sync's alone. Prints `{"ms":..,"rssMb":..}`. Started, compiled, by bench/kernel.ts.
 *
 *   node --import tsx bench/sync-once.ts NETNS iptables|nftables COUNT
 */
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/backend.js'
import {ExecRunner} from '../src/lib/host/runner.js'
import {plan} from '../src/lib/plan/plan.js'
import {peakRssMb} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'

const [netns, name, countText] = process.argv.slice(2)
if (!netns?.startsWith('snb-') || !BACKEND_NAMES.includes(name as BackendName) || !countText) {
  throw new Error('usage: sync-once.ts snb-NAMESPACE iptables|nftables COUNT')
}
const {host, addresses} = syntheticHost()
const snapshot = syntheticSnapshot(Number(countText), addresses)
const started = performance.now()
const backend = createBackend(name as BackendName, new ExecRunner({timeoutSeconds: 120, netns}))
await backend.apply(backend.render(plan(snapshot, host, BENCH_PLAN_OPTIONS).model))
console.log(JSON.stringify({ms: performance.now() - started, rssMb: peakRssMb()}))
