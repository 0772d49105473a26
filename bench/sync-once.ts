/**
 * One plan + render + apply of N synthetic Mappings into a network namespace, in a process of its
 * own so its peak RSS is the sync's alone. Prints `{"ms":..,"rssMb":..}`. Started by bench/kernel.ts.
 *
 *   node --import tsx bench/sync-once.ts NETNS COUNT
 */
import {applyIptables} from '../src/lib/backend/iptables/apply.js'
import {renderIptables} from '../src/lib/backend/iptables/render.js'
import {ExecRunner} from '../src/lib/host/runner.js'
import {plan} from '../src/lib/plan/plan.js'
import {peakRssMb} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'

const [netns, countText] = process.argv.slice(2)
if (!netns?.startsWith('snb-') || !countText) throw new Error('usage: sync-once.ts snb-NAMESPACE COUNT')
const {host, addresses} = syntheticHost()
const snapshot = syntheticSnapshot(Number(countText), addresses)
const started = performance.now()
const model = plan(snapshot, host, BENCH_PLAN_OPTIONS).model
await applyIptables(new ExecRunner({timeoutSeconds: 120, netns}), renderIptables(model))
console.log(JSON.stringify({ms: performance.now() - started, rssMb: peakRssMb()}))
