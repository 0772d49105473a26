/**
 * One full sync of N synthetic Mappings into an empty network namespace, in a process that has
 * planned nothing before, as `smartnat sync` always is: the kernel reads started, plan + render,
 * apply. Prints `{"ms":..}` (the synthetic cluster is built before the clock starts). Started,
 * compiled, by bench/kernel.ts.
 *
 *   node --import tsx bench/full-sync-cold.ts NETNS iptables|nftables COUNT
 */
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/registry.js'
import {ExecRunner} from '../src/lib/host/runner.js'
import {plan} from '../src/lib/plan/plan.js'
import {readAhead} from '../src/lib/sync/once.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'

const [netns, name, countText] = process.argv.slice(2)
if (!netns?.startsWith('snb-') || !BACKEND_NAMES.includes(name as BackendName) || !countText) {
  throw new Error('usage: full-sync-cold.ts snb-NAMESPACE iptables|nftables COUNT')
}
const {host, addresses} = syntheticHost()
const snapshot = syntheticSnapshot(Number(countText), addresses)
const backend = createBackend(name as BackendName, new ExecRunner({timeoutSeconds: 120, netns}))
const started = performance.now()
const kernelRead = readAhead(backend)
await backend.apply(backend.render(plan(snapshot, host, BENCH_PLAN_OPTIONS).model), {kernelRead})
console.log(JSON.stringify({ms: performance.now() - started}))
