/**
 * A daemon's periodic read of the kernel at N Mappings of the kernel benchmark's cluster (`--snat`),
 * for one backend: the state is rendered by the daemon's backend (rendering again, as `smartnat
 * watch` does) and applied into a throwaway network namespace (root), then read back as a resync
 * reads it (`backend.read()`: against the chains and sets the backend rendered last) and as a read
 * with nothing to compare with does (a one-shot sync's, `explain`'s), alternately, in a process that
 * holds as much live heap as the watch does at rest (60 MB), so that V8 does not collect in the
 * middle of a read. Prints, for each, the median over the reads of how far the heap grew during the
 * read (the state read and what reading it left behind, before any collection), what of that stays
 * alive once collected (the state), and its wall and CPU time; and the resync's growth as a share of
 * the plain read's, measured in the same run.
 *
 *   node --expose-gc --import tsx bench/resync-read-heap.ts [iptables|nftables] [COUNT]
 */
import {limitHeapGrowth} from '../src/lib/app/heap.js'
import {readIptablesState} from '../src/lib/backend/iptables/read.js'
import {readNftState} from '../src/lib/backend/nftables/read.js'
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/registry.js'
import type {Runner} from '../src/lib/host/runner.js'
import {PlanMemo} from '../src/lib/plan/memo.js'
import {measuredRead, restingHeap, type MeasuredRead} from './live-heap.js'
import {addHostInterfaces, createNamespace, runKernelBenchmark} from './netns.js'
import {median, printTable} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'

const name = (process.argv[2] ?? 'nftables') as BackendName
const count = Number(process.argv[3] ?? 10_000)
if (!BACKEND_NAMES.includes(name) || !Number.isInteger(count) || count < 1) throw new Error('usage: resync-read-heap.ts [iptables|nftables] [COUNT]')
const READS = 5
const REST_MB = 60

// As `smartnat watch` does when it starts.
limitHeapGrowth()

const round = (n: number) => Math.round(n * 10) / 10

await runKernelBenchmark(async () => {
  const {host, addresses} = syntheticHost()
  const ns = await createNamespace('resyncread')
  try {
    await addHostInterfaces(ns, host)
    const backend = createBackend(name, ns.runner, {rendersAgain: true})
    await backend.apply(backend.render(new PlanMemo().plan(syntheticSnapshot(count, addresses), host, BENCH_PLAN_OPTIONS).model), {full: true})
    const plain = (runner: Runner) => (name === 'nftables' ? readNftState(runner) : readIptablesState(runner))
    const held = restingHeap(REST_MB)
    await measuredRead(() => backend.read())
    await measuredRead(() => plain(ns.runner))
    const resync: MeasuredRead[] = []
    const fresh: MeasuredRead[] = []
    for (let i = 0; i < READS; i++) {
      resync.push(await measuredRead(() => backend.read()))
      fresh.push(await measuredRead(() => plain(ns.runner)))
    }
    const of = (reads: MeasuredRead[], pick: (read: MeasuredRead) => number) => round(median(reads.map(pick)))
    const row = (label: string, reads: MeasuredRead[]) => [label, of(reads, (r) => r.grewMb), of(reads, (r) => r.stateMb), of(reads, (r) => r.ms), of(reads, (r) => r.cpuMs)]
    console.log(`\n# A daemon's resync read of the kernel, ${name}, ${count.toLocaleString('en')} Mappings (median of ${READS} each, alternating)\n`)
    printTable(['read', 'heap grew during the read MB', 'state read MB (alive)', 'ms', 'CPU ms'], [row('resync (against the last render)', resync), row('plain (nothing to compare with)', fresh)])
    console.log(`\nresync / plain: heap growth ${(median(resync.map((r) => r.grewMb)) / median(fresh.map((r) => r.grewMb))).toFixed(2)}, CPU ${(median(resync.map((r) => r.cpuMs)) / median(fresh.map((r) => r.cpuMs))).toFixed(2)}`)
    // Alive until here, as the watch's caches are.
    void held
    return true
  } finally {
    await ns.destroy()
  }
})
