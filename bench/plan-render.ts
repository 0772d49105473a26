/**
 * Control-plane benchmark: plan and render 10,000 Mappings (2 ports, 2 allowed sources each, over
 * 100 addresses) the way one `smartnat sync` does, cold, in this process. No root needed.
 *
 *   npm run bench [-- COUNT]
 */
import {renderIptables, renderRestoreScripts} from '../src/lib/backend/iptables/render.js'
import {nftablesBackend} from '../src/lib/backend/nftables/backend.js'
import {RecordingRunner} from '../test/support/recording-runner.js'
import {DEFAULT_PLAN_OPTIONS} from '../src/lib/plan/model.js'
import {plan} from '../src/lib/plan/plan.js'
import {median, peakRssMb, printTable, printTargets, timed} from './report.js'
import {syntheticHost, syntheticSnapshot} from './synthetic.js'

const count = Number(process.argv[2] ?? 10_000)
const WARM_RUNS = 5

const {host, addresses} = syntheticHost()
const snapshot = syntheticSnapshot(count, addresses)

/** One pass: plan, render the kernel state, render the restore payloads. */
async function pass(): Promise<{plan: number; render: number; payloads: number; total: number; lines: number}> {
  const planned = await timed(() => plan(snapshot, host, DEFAULT_PLAN_OPTIONS))
  const rendered = await timed(() => renderIptables(planned.value.model))
  const scripts = await timed(() => renderRestoreScripts(rendered.value))
  const lines = scripts.value.ipset.split('\n').length + scripts.value.iptables.split('\n').length
  const programmed = planned.value.model.mappings.length
  if (programmed !== count) throw new Error(`expected ${count} programmed Mappings, the plan has ${programmed}`)
  return {plan: planned.ms, render: rendered.ms, payloads: scripts.ms, total: planned.ms + rendered.ms + scripts.ms, lines}
}

const baseline = peakRssMb()
const cold = await pass()
// One sync's peak: what `smartnat sync` needs. The warm passes after it only time the code; the
// garbage they leave behind would inflate the peak without any sync needing that memory.
const rss = peakRssMb()
const warm: Awaited<ReturnType<typeof pass>>[] = []
for (let i = 0; i < WARM_RUNS; i++) warm.push(await pass())

console.log(`plan + render of ${count} Mappings (2 ports, 2 allowed sources each, ${addresses.length} addresses); payloads: ${cold.lines} lines`)
printTable(
  ['run', 'plan ms', 'render ms', 'payloads ms', 'total ms'],
  [
    ['cold (first)', cold.plan, cold.render, cold.payloads, cold.total],
    [`warm (median of ${WARM_RUNS})`, median(warm.map((w) => w.plan)), median(warm.map((w) => w.render)), median(warm.map((w) => w.payloads)), median(warm.map((w) => w.total))],
  ],
)
console.log(`peak RSS: ${baseline.toFixed(0)} MB with the input loaded, ${rss.toFixed(0)} MB after one plan + render, ${peakRssMb().toFixed(0)} MB after the warm runs`)
// The nftables backend side by side: the same plan, rendered to one `nft -f` script (pure, no kernel).
const nft = nftablesBackend(new RecordingRunner())
const model = plan(snapshot, host, DEFAULT_PLAN_OPTIONS).model
const nftRuns: {render: number; payloads: number}[] = []
for (let i = 0; i <= WARM_RUNS; i++) {
  const rendered = await timed(() => nft.render(model))
  const payloads = await timed(() => nft.payloads(rendered.value))
  nftRuns.push({render: rendered.ms, payloads: payloads.ms})
}
const warmNft = nftRuns.slice(1)
console.log('render only, same plan:')
printTable(
  ['backend', 'render ms (cold)', 'payloads ms (cold)', `render + payloads ms (warm median of ${WARM_RUNS})`],
  [
    ['iptables', cold.render, cold.payloads, median(warm.map((w) => w.render + w.payloads))],
    ['nftables', nftRuns[0]!.render, nftRuns[0]!.payloads, median(warmNft.map((w) => w.render + w.payloads))],
  ],
)
const ok = printTargets([
  {name: `plan + render ${count} Mappings (cold)`, value: cold.total / 1000, limit: 1, unit: 's'},
  {name: 'peak RSS of one plan + render', value: rss, limit: 300, unit: 'MB'},
])
process.exitCode = ok ? 0 : 1
