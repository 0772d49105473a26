/** The V8 heap settings of the commands that hold a whole cluster (src/lib/app/heap.ts). */
import {spawnSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {expect} from 'chai'
import {transformSync} from 'esbuild'
import {collectGarbage, collectingAfter, collectingAroundReads} from '../../src/lib/app/heap.js'
import {ReadClaim, ReadGaveWayError} from '../../src/lib/sync/read-claim.js'

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

/** A snapshot loader for passes that never look at it. */
const load = async () => ({mappings: [], services: [], endpointSlices: []})

describe('collectingAroundReads', () => {
  it('collects garbage before and after a pass that reads the kernel, never around one that trusts the state applied last', async () => {
    const calls: string[] = []
    const pass = collectingAroundReads(
      async (_load, options) => {
        calls.push(options.assumeActual === undefined ? 'reading pass' : options.full ? 'full pass' : 'trusting pass')
        return {} as never
      },
      () => calls.push('collect'),
    )
    await pass(load, {full: false})
    await pass(load, {full: false, assumeActual: {}})
    await pass(load, {full: true, assumeActual: {}})
    expect(calls).to.deep.equal(['collect', 'reading pass', 'collect', 'trusting pass', 'collect', 'full pass', 'collect'])
  })

  it('collects once more when a reading pass has read the kernel, and gives a trusting pass nothing to call there', async () => {
    const calls: string[] = []
    const pass = collectingAroundReads(
      async (_load, options) => {
        calls.push(options.afterRead ? 'pass, read' : 'pass, no read')
        options.afterRead?.()
        return {} as never
      },
      () => calls.push('collect'),
    )
    await pass(load, {full: false})
    await pass(load, {full: false, assumeActual: {}})
    await pass(load, {full: true, assumeActual: {}})
    expect(calls).to.deep.equal(['collect', 'pass, read', 'collect', 'collect', 'pass, no read', 'collect', 'pass, read', 'collect', 'collect'])
  })

  it('makes no collection once the kernel is read when a change waits by then', async () => {
    const calls: string[] = []
    let changeWaiting = false
    const pass = collectingAroundReads(
      async (_load, options) => {
        calls.push('read')
        changeWaiting = true
        options.afterRead?.()
        return {} as never
      },
      () => calls.push('collect'),
    )
    await pass(load, {full: false, changeWaiting: () => changeWaiting})
    expect(calls).to.deep.equal(['collect', 'read'])
  })

  it('collects after a pass that failed as after one that succeeded', async () => {
    let collected = 0
    const pass = collectingAroundReads(async () => {
      throw new Error('iptables-restore failed')
    }, () => collected++)
    const failed = await pass(load, {full: false}).catch((error: Error) => error)
    expect((failed as Error).message).to.equal('iptables-restore failed')
    expect(collected).to.equal(2)
  })
})

describe('collectingAroundReads while changes wait', () => {
  it('makes no collection while a change waits for the loop: none before a read when one waits, none after a read during which one came', async () => {
    const calls: string[] = []
    let changeWaiting = true
    const pass = collectingAroundReads(
      async () => {
        calls.push('reading pass')
        changeWaiting = !changeWaiting
        return {} as never
      },
      () => calls.push('collect'),
    )
    await pass(load, {full: false, changeWaiting: () => changeWaiting})
    await pass(load, {full: false, changeWaiting: () => changeWaiting})
    // The first read begins with a change waiting and ends with none; the second the other way round.
    expect(calls).to.deep.equal(['reading pass', 'collect', 'collect', 'reading pass'])
  })

  it('makes no collection after a read that gave way to a change', async () => {
    let collected = 0
    const claim = new ReadClaim()
    const pass = collectingAroundReads(async () => {
      claim.giveWay()
      throw new ReadGaveWayError()
    }, () => collected++)
    await pass(load, {full: false, claim, changeWaiting: () => false}).catch(() => undefined)
    expect(collected, 'before the read only').to.equal(1)
  })
})

describe('collectingAfter', () => {
  it('collects garbage once what it loads has loaded', async () => {
    const calls: string[] = []
    const load = collectingAfter(async () => {
      calls.push('load')
      return 'snapshot'
    }, () => calls.push('collect'))
    expect(await load()).to.equal('snapshot')
    expect(calls).to.deep.equal(['load', 'collect'])
  })
})

describe('collectGarbage', () => {
  it('collects what nothing refers to any more, in a process started without --expose-gc, leaving no global gc behind', async () => {
    const ref = (() => new WeakRef({payload: 'x'.repeat(1000)}))()
    // A WeakRef's target is kept until the job that made it ends.
    await new Promise((resolve) => setImmediate(resolve))
    collectGarbage()
    expect(ref.deref()).to.equal(undefined)
    expect((globalThis as {gc?: unknown}).gc).to.equal(undefined)
  })
})
