/**
 * What a watch pass after one change costs the backend at 10,000 Mappings, both backends, mode
 * service and mode direct: render the next model, count its rules and Mappings (the pass's metric
 * and mass-removal guard), and diff it against the state applied last (apply with a recording
 * runner, trusting that state as the watch does). The change is one endpoint of the last Mapping's
 * Service, back and forth. No root needed.
 *
 * The models keep the previous model's NatMapping and NatEgress objects wherever they are equal, as
 * a planner that reuses what did not change hands them to the backend.
 *
 *   node --import tsx bench/render-change.ts [COUNT] [ROUNDS]
 */
import {performance} from 'node:perf_hooks'
import {createBackend} from '../src/lib/backend/registry.js'
import {plan} from '../src/lib/plan/plan.js'
import {reusing} from '../test/support/model-reuse.js'
import {RecordingRunner} from '../test/support/recording-runner.js'
import {printTable} from './report.js'
import {BENCH_PLAN_OPTIONS, directPods, syntheticHost, syntheticSnapshot, withSlice} from './synthetic.js'

const count = Number(process.argv[2] ?? 10_000)
const rounds = Number(process.argv[3] ?? 40)

function quantile(values: number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * q))]!
}

const rows: (string | number)[][] = []
for (const name of ['iptables', 'nftables'] as const) {
  for (const mode of ['service', 'direct'] as const) {
    const {host, addresses} = syntheticHost()
    const base = syntheticSnapshot(count, addresses, mode)
    const last = count - 1
    const pods = directPods(last)
    const moved = mode === 'direct' ? [...pods.slice(0, -1), directPods(last, pods.length)[0]!] : [pods[0]!, directPods(last, 5)[0]!]
    const first = plan(base, host, BENCH_PLAN_OPTIONS).model
    const changed = reusing(first, plan(withSlice(base, last, moved), host, BENCH_PLAN_OPTIONS).model)
    const back = reusing(changed, plan(base, host, BENCH_PLAN_OPTIONS).model)
    const runner = new RecordingRunner()
    const backend = createBackend(name, runner)
    let applied = backend.render(first)
    const times = {render: [] as number[], summary: [] as number[], diff: [] as number[], total: [] as number[]}
    let writes = ''
    for (let round = 0; round < rounds; round++) {
      const start = performance.now()
      const desired = backend.render(round % 2 === 0 ? changed : back)
      const rendered = performance.now()
      backend.ruleCount(desired)
      backend.programmedMappings(desired)
      const summarized = performance.now()
      runner.calls.length = 0
      await backend.apply(desired, {assumeActual: applied})
      const diffed = performance.now()
      times.render.push(rendered - start)
      times.summary.push(summarized - rendered)
      times.diff.push(diffed - summarized)
      times.total.push(diffed - start)
      writes = runner.calls.map((c) => `${c.command}: ${c.input?.trimEnd().split('\n').length ?? 0} lines`).join(', ')
      applied = desired
    }
    const cell = (values: number[]) => `${quantile(values, 0.5).toFixed(1)} / ${quantile(values, 0.9).toFixed(1)}`
    rows.push([name, mode, cell(times.render), cell(times.summary), cell(times.diff), cell(times.total), writes])
  }
}
console.log(`one endpoint changed, back and forth, ${count} Mappings; ms p50 / p90 of ${rounds} passes`)
printTable(['backend', 'mode', 'render', 'rule count + Mappings', 'diff (apply)', 'total', 'writes per pass'], rows)
