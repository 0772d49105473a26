/**
 * Mode direct at scale (root), side by side with mode service, for both backends, in throwaway network
 * namespaces:
 *
 * - full apply of N Mappings (default 10,000; in mode direct each Service port has three pods) into an
 *   empty namespace, as `smartnat sync` runs it (kernel reads started, plan + render, apply), vs the
 *   floor: the very payloads fed to the kernel tools in another empty namespace (bench/kernel.ts's floor);
 * - one endpoint changed, applied by the watch loop: from the event (the source tells the loop) to the
 *   kernel written (the end of the pass's last write command); target < 50 ms in mode direct;
 * - the data plane: new TCP connections through the DNAT to the last-added Mapping with N Mappings vs
 *   1, judged on CPU time per connection (bench/dataplane-rig.ts); targets >= 0.95 nftables, >= 0.85 iptables.
 *
 * Figures, ratios and each target's PASS/FAIL are printed; the exit code does not depend on them.
 *
 *   npm run bench:direct [-- --count N --repeats N --changes N --rounds N --pairs N --seconds S --only iptables|nftables --no-dataplane --no-full-apply]
 */
import {parseArgs} from 'node:util'
import {HostChanges} from '../src/lib/host/host-changes.js'
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/registry.js'
import type {Snapshot} from '../src/lib/plan/model.js'
import {WatchLoop, syncPass, type SyncPass} from '../src/lib/sync/watch.js'
import {BenchSource} from './bench-source.js'
import {fullApplyAndFloor, type FullApply} from './full-apply.js'
import {dataplaneTargets, printDataplane, runDataplane, type Config} from './dataplane-rig.js'
import {CountingRunner, runKernelBenchmark, withHostNamespace, type CountedCall} from './netns.js'
import {median, printTable, printTargets, type Target} from './report.js'
import {BENCH_PLAN_OPTIONS, directPods, syntheticHost, syntheticPods, syntheticSnapshot, withSlice, type SyntheticMode} from './synthetic.js'

const MODES: SyntheticMode[] = ['service', 'direct']
const CHANGE_TARGET_MS = 50
const DATAPLANE_TARGET: Record<BackendName, number> = {iptables: 0.85, nftables: 0.95}
/** No periodic resync during the changes: every pass is one a change started. */
const RESYNC_MS = 600_000
/** Between two changes: longer than the loop's least interval between passes (100 ms), so no change waits for it. */
const CHANGE_GAP_MS = 300

/** What wrote the kernel: the calls that fed a payload to a tool (reads and conntrack take none). */
function payloadWrites(calls: readonly CountedCall[]): CountedCall[] {
  return calls.filter((c) => c.input !== undefined)
}

function tag(name: BackendName, mode: SyntheticMode): string {
  return `${name.slice(0, 3)}${mode === 'direct' ? 'd' : 's'}`
}

/** One full apply into an empty namespace, then the floor: the same payloads straight into another empty one. */
async function fullApply(name: BackendName, mode: SyntheticMode, count: number, run: number): Promise<FullApply> {
  const {host, addresses} = syntheticHost()
  const snapshot = syntheticSnapshot(count, addresses, mode)
  return fullApplyAndFloor(name, snapshot, host, {smartnat: `${tag(name, mode)}full-${run}`, floor: `${tag(name, mode)}floor-${run}`})
}

interface WatchChange {
  /** From the event to the end of the pass's last kernel write. */
  eventToKernelMs: number
  /** The whole pass: host read, plan, render, diff, writes, conntrack cleanup. */
  passMs: number
  writes: string
}

/** The endpoints of the last Mapping's Service with one pod replaced by another. */
function oneEndpointChanged(base: Snapshot, mode: SyntheticMode, last: number): Snapshot {
  if (mode === 'direct') {
    const pods = directPods(last)
    return withSlice(base, last, [...pods.slice(0, -1), directPods(last, pods.length)[0]!])
  }
  return withSlice(base, last, [syntheticPods(last)[0], syntheticPods(last, 2)[0]])
}

/** The watch loop holding `count` Mappings; `changes` single-endpoint changes (there and back), each timed from event to kernel. */
async function watchChanges(name: BackendName, mode: SyntheticMode, count: number, changes: number): Promise<WatchChange[]> {
  const {host, addresses} = syntheticHost()
  return withHostNamespace(`${tag(name, mode)}watch`, host, async (ns) => {
    const runner = new CountingRunner(ns.runner)
    // As the daemon: the host's addresses followed by ip monitor, not read on every pass.
    const hostChanges = new HostChanges(runner)
    hostChanges.start()
    const pass = syncPass({runner, backend: createBackend(name, runner, {rendersAgain: true})}, {plan: BENCH_PLAN_OPTIONS, interfacesPattern: /^ext\d+$/}, hostChanges)
    let passDone: ((ms: number) => void) | undefined
    const timedPass: SyncPass = async (load, options) => {
      const started = performance.now()
      const report = await pass(load, options)
      passDone?.(performance.now() - started)
      return report
    }
    const nextPass = () => new Promise<number>((resolve) => (passDone = resolve))
    const base = syntheticSnapshot(count, addresses, mode)
    const changed = oneEndpointChanged(base, mode, count - 1)
    const source = new BenchSource(base)
    const loop = new WatchLoop({source, sync: timedPass, resyncIntervalMs: RESYNC_MS, hostChanges})
    const results: WatchChange[] = []
    try {
      const first = nextPass()
      await loop.start()
      await first
      for (let k = 0; k < changes; k++) {
        await new Promise((resolve) => setTimeout(resolve, CHANGE_GAP_MS))
        runner.take()
        const done = nextPass()
        const event = performance.now()
        source.replace(k % 2 === 0 ? changed : base)
        const passMs = await done
        const writes = payloadWrites(runner.take())
        const written = writes.length === 0 ? NaN : Math.max(...writes.map((c) => c.endedAt)) - event
        results.push({eventToKernelMs: written, passMs, writes: writes.map((c) => `${c.command} ${c.inputLines} lines (${Math.round(c.ms)} ms)`).join(', ') || 'none'})
      }
    } finally {
      await loop.stop()
      await hostChanges.stop()
    }
    return results
  })
}

async function benchBackend(name: BackendName, options: {count: number; repeats: number; changes: number; fullApply: boolean}, targets: Target[]): Promise<void> {
  const {count, repeats, changes} = options
  console.log(`\n# ${name}\n`)
  if (options.fullApply) await benchFullApply(name, count, repeats)
  await benchChanges(name, count, changes, targets)
}

async function benchFullApply(name: BackendName, count: number, repeats: number): Promise<void> {
  const many = count.toLocaleString('en')
  console.log(`## Full apply of ${many} Mappings into an empty namespace vs the floor (same payloads, kernel tools only), medians of ${repeats}`)
  const fullRows: (string | number)[][] = []
  for (const mode of MODES) {
    const runs: FullApply[] = []
    for (let run = 0; run < repeats; run++) runs.push(await fullApply(name, mode, count, run))
    const [planRender, apply, total, floor] = (['planRenderMs', 'applyMs', 'totalMs', 'floorMs'] as const).map((k) => median(runs.map((r) => r[k])))
    fullRows.push([`mode ${mode}`, planRender!, apply!, total!, floor!, apply! / floor!, total! / floor!])
  }
  printTable(['mode', 'plan+render ms', 'apply ms', 'total ms', 'floor ms', 'apply/floor', 'total/floor'], fullRows)
}

async function benchChanges(name: BackendName, count: number, changes: number, targets: Target[]): Promise<void> {
  const many = count.toLocaleString('en')
  console.log(`\n## One endpoint of the last Mapping changed, applied by the watch loop holding ${many} (${changes} changes, there and back): event to kernel written`)
  const changeRows: (string | number)[][] = []
  for (const mode of MODES) {
    const results = await watchChanges(name, mode, count, changes)
    const written = results.map((r) => r.eventToKernelMs).filter((ms) => !Number.isNaN(ms))
    const eventToKernel = written.length > 0 ? median(written) : NaN
    changeRows.push([`mode ${mode}`, eventToKernel, written.length > 0 ? Math.max(...written) : NaN, median(results.map((r) => r.passMs)), results.at(-1)?.writes ?? 'none'])
    if (mode === 'direct') targets.push({name: `${name} mode direct, one endpoint changed at ${many}: event to kernel (median)`, value: eventToKernel, limit: CHANGE_TARGET_MS, unit: 'ms'})
  }
  printTable(['mode', 'event to kernel ms (median)', 'max', 'pass ms (median)', 'writes (last change)'], changeRows)
}

async function main(): Promise<boolean> {
  const {values} = parseArgs({
    options: {
      count: {type: 'string', default: '10000'},
      repeats: {type: 'string', default: '3'},
      changes: {type: 'string', default: '6'},
      rounds: {type: 'string', default: '2'},
      pairs: {type: 'string', default: '5'},
      seconds: {type: 'string', default: '2'},
      only: {type: 'string'},
      'no-dataplane': {type: 'boolean', default: false},
      'no-full-apply': {type: 'boolean', default: false},
    },
  })
  const [count, repeats, changes, rounds, pairs, seconds] = [values.count, values.repeats, values.changes, values.rounds, values.pairs, values.seconds].map(Number) as [number, number, number, number, number, number]
  if (!(Number.isInteger(count) && count >= 1 && count <= 10_000)) throw new Error('--count 1..10000')
  if (!(repeats >= 1 && repeats <= 10 && changes >= 1 && changes <= 50)) throw new Error('--repeats 1..10, --changes 1..50')
  if (!(rounds >= 1 && rounds <= 10 && pairs >= 1 && pairs <= 20 && seconds > 0 && seconds <= 10)) throw new Error('--rounds 1..10, --pairs 1..20, --seconds 0..10')
  if (values.only !== undefined && !(BACKEND_NAMES as readonly string[]).includes(values.only)) throw new Error(`--only: one of ${BACKEND_NAMES.join(', ')}`)
  const backends = BACKEND_NAMES.filter((name) => values.only === undefined || values.only === name)

  const targets: Target[] = []
  for (const name of backends) await benchBackend(name, {count, repeats, changes, fullApply: !values['no-full-apply']}, targets)
  if (!values['no-dataplane']) {
    console.log('\n# Data plane, mode direct beside mode service\n')
    const configs: Config[] = backends.flatMap((name) =>
      MODES.map((mode) => ({label: `${name}, mode ${mode}`, layout: name, snat: false, mode, ...(mode === 'direct' ? {target: DATAPLANE_TARGET[name]} : {})})),
    )
    const options = {rounds, pairs, seconds, first: false, count}
    targets.push(...dataplaneTargets(printDataplane(await runDataplane(configs, options), options), count))
  }
  console.log('')
  printTargets(targets)
  // Wall-clock figures on a shared machine: reported, never the exit code.
  return true
}

await runKernelBenchmark(main)
