/**
 * The live heap of the nftables backend's two tables at N Mappings of the kernel benchmark's
 * cluster (`--snat`): the desired table the one-shot sync renders, and the table parsed from the
 * `nft -j` listing of that table, read back from a throwaway network namespace (root, nft). Prints
 * each in MB after a full collection, with its element count and how long it took.
 *
 *   node --expose-gc --import tsx bench/nft-state-heap.ts [COUNT]
 */
import {spawnSync} from 'node:child_process'
import {renderNftScript} from '../src/lib/backend/nftables/syntax.js'
import {parseNftJson} from '../src/lib/backend/nftables/parse.js'
import {renderNftables} from '../src/lib/backend/nftables/render.js'
import type {NftTable} from '../src/lib/backend/nftables/types.js'
import {PlanMemo} from '../src/lib/plan/memo.js'
import {createNamespace, runKernelBenchmark} from './netns.js'
import {printTable} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'
import {liveMb} from './live-heap.js'

const count = Number(process.argv[2] ?? 10_000)
if (!Number.isInteger(count) || count < 1) throw new Error('usage: nft-state-heap.ts [COUNT]')

const elements = (table: NftTable | undefined) => table?.sets.reduce((n, set) => n + set.elements.length, 0) ?? 0
const round = (n: number) => Math.round(n * 10) / 10

/** The listing of `script`'s table as `nft -j` prints it, from a namespace made for it. */
async function listing(script: string): Promise<string> {
  const ns = await createNamespace('heap')
  try {
    await ns.runner.run('nft', ['-f', '-'], {input: script})
    // Read with spawnSync: the text is all this process keeps of it.
    const listed = spawnSync('ip', ['netns', 'exec', ns.name, 'nft', '-j', 'list', 'table', 'ip', 'smartnat'], {encoding: 'utf8', maxBuffer: 1 << 30})
    if (listed.status !== 0) throw new Error(`nft -j list table failed: ${listed.stderr}`)
    return listed.stdout
  } finally {
    await ns.destroy()
  }
}

await runKernelBenchmark(async () => {
  const {host, addresses} = syntheticHost()
  const model = new PlanMemo().plan(syntheticSnapshot(count, addresses), host, BENCH_PLAN_OPTIONS).model
  let text: string | undefined = await listing(renderNftScript(renderNftables(model)))

  let before = liveMb()
  let started = performance.now()
  const desired = renderNftables(model)
  const renderMs = performance.now() - started
  const desiredMb = liveMb() - before

  before = liveMb()
  started = performance.now()
  const read = parseNftJson(text)
  const parseMs = performance.now() - started
  text = undefined
  const readMb = liveMb() - before

  console.log(`\n# The nftables backend's tables at ${count.toLocaleString('en')} Mappings\n`)
  printTable(
    ['table', 'elements', 'live heap MB', 'ms'],
    [
      ['desired (renderNftables)', elements(desired.table), round(desiredMb), Math.round(renderMs)],
      ['read (parseNftJson of the listing)', elements(read), round(readMb), Math.round(parseMs)],
    ],
  )
  // Alive until here, so that both are counted.
  void [desired, read]
  return true
})
