/**
 * The iptables backend's read of the kernel at N Mappings of the kernel benchmark's cluster
 * (`--snat`): the state is applied into a throwaway network namespace (root, iptables, ipset), then
 * read back as a pass reads it (`readIptablesState`), in a process that holds as much live heap as
 * the watch does at rest (60 MB), so that V8 does not collect in the middle of the read. Prints the
 * listings' sizes, how far the heap grew while they were read and parsed (the state read and what
 * reading it left behind, before any collection), what of that stays alive (the state), and the read's
 * wall and CPU time; the median of five reads.
 *
 *   node --expose-gc --import tsx bench/iptables-read-heap.ts [COUNT]
 */
import {spawnSync} from 'node:child_process'
import {limitHeapGrowth} from '../src/lib/app/heap.js'
import {iptablesBackend} from '../src/lib/backend/iptables/backend.js'
import {readIptablesState} from '../src/lib/backend/iptables/read.js'
import {PlanMemo} from '../src/lib/plan/memo.js'
import {measuredRead, restingHeap, type MeasuredRead} from './live-heap.js'
import {addHostInterfaces, createNamespace, runKernelBenchmark, type BenchNamespace} from './netns.js'
import {median, printTable} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'

const count = Number(process.argv[2] ?? 10_000)
if (!Number.isInteger(count) || count < 1) throw new Error('usage: iptables-read-heap.ts [COUNT]')
const READS = 5
const REST_MB = 60

// As `smartnat watch` does when it starts.
limitHeapGrowth()

const round = (n: number) => Math.round(n * 10) / 10

/** The bytes `command` prints inside `ns`. */
function listingBytes(ns: BenchNamespace, command: string[]): number {
  return spawnSync('ip', ['netns', 'exec', ns.name, ...command], {maxBuffer: 1 << 30}).stdout.length
}

await runKernelBenchmark(async () => {
  const {host, addresses} = syntheticHost()
  const ns = await createNamespace('iptread')
  try {
    await addHostInterfaces(ns, host)
    const backend = iptablesBackend(ns.runner)
    await backend.apply(backend.render(new PlanMemo().plan(syntheticSnapshot(count, addresses), host, BENCH_PLAN_OPTIONS).model), {full: true})
    const held = restingHeap(REST_MB)
    const read = () => readIptablesState(ns.runner)
    await measuredRead(read)
    const reads: MeasuredRead[] = []
    for (let i = 0; i < READS; i++) reads.push(await measuredRead(read))
    const of = (pick: (read: MeasuredRead) => number) => round(median(reads.map(pick)))
    console.log(`\n# The iptables backend's read of the kernel at ${count.toLocaleString('en')} Mappings (median of ${READS})\n`)
    printTable(
      ['iptables-save MB', 'ipset save MB', 'heap grew during the read MB', 'state read MB (alive)', 'ms', 'CPU ms'],
      [[round(listingBytes(ns, ['iptables-save']) / 1e6), round(listingBytes(ns, ['ipset', 'save']) / 1e6), of((r) => r.grewMb), of((r) => r.stateMb), of((r) => r.ms), of((r) => r.cpuMs)]],
    )
    // Alive until here, as the watch's caches are.
    void held
    return true
  } finally {
    await ns.destroy()
  }
})
