/** The V8 heap settings of the commands that hold a whole cluster (src/lib/app/heap.ts). */
import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {expect} from 'chai'
import {transformSync} from 'esbuild'

// Plain JavaScript for a plain `node`: a TypeScript loader would grow the young generation before the module runs.
const HEAP_MODULE = transformSync(readFileSync(new URL('../../src/lib/app/heap.ts', import.meta.url), 'utf8'), {loader: 'ts', format: 'esm'}).code

/** The young generation's size in MB after a burst of objects that live a while, in a fresh process that called limitHeapGrowth() first or not. */
function youngGenerationMb(limited: boolean): number {
  const script = `${HEAP_MODULE}
    import {getHeapSpaceStatistics} from 'node:v8'
    if (${limited}) limitHeapGrowth()
    // Objects that outlive a collection or two, as a pass's do, are what makes V8 grow the young generation.
    let kept = []
    for (let i = 0; i < 1e6; i++) { kept.push({i, text: 'x' + i}); if (kept.length > 1e5) kept = [] }
    console.log(getHeapSpaceStatistics().find((space) => space.space_name === 'new_space').space_size / 2 ** 20)
  `
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`the child failed: ${result.stderr}`)
  return Number(result.stdout.trim())
}

describe('limitHeapGrowth', () => {
  it('keeps the young generation at its starting size, where V8 would grow it many times over', () => {
    expect(youngGenerationMb(false)).to.be.greaterThan(8)
    expect(youngGenerationMb(true)).to.be.at.most(4)
  })
})
