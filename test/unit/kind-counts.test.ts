import {expect} from 'chai'
import fc from 'fast-check'
import {KindCounts} from '../../src/lib/plan/changed.js'
import {countWork} from '../support/work-counter.js'

interface Item {
  kind: 'a' | 'b' | 'c'
}

const KINDS = ['a', 'b', 'c'] as const

describe('KindCounts', () => {
  it('counts what a filter over the whole list counts, over random lists that share most of their items', () => {
    const stepArb = fc.record({replace: fc.array(fc.tuple(fc.nat(9), fc.constantFrom(...KINDS)), {maxLength: 3}), drop: fc.option(fc.nat(9), {nil: undefined}), add: fc.option(fc.constantFrom(...KINDS), {nil: undefined})})
    fc.assert(
      fc.property(fc.array(stepArb, {minLength: 1, maxLength: 15}), (steps) => {
        const counts = new KindCounts((item: Item) => item.kind)
        let items: Item[] = []
        for (const step of steps) {
          // Changed items are new objects in the place of the old; the others stay the very same.
          items = items.map((item, i) => {
            const replaced = step.replace.find(([at]) => at === i)
            return replaced ? {kind: replaced[1]} : item
          })
          if (step.drop !== undefined) items = items.filter((_, i) => i !== step.drop)
          if (step.add !== undefined) items = [...items, {kind: step.add}]
          for (const kind of KINDS) expect(counts.count(items, kind), kind).to.equal(items.filter((item) => item.kind === kind).length)
        }
      }),
      {numRuns: 300},
    )
  })

  it('after one item changed, does the same work among 1,000 items as among 10,000', () => {
    const workAt = (size: number) => {
      const counts = new KindCounts((item: Item) => item.kind)
      const items: Item[] = Array.from({length: size}, (_, i) => ({kind: KINDS[i % 3]!}))
      counts.count(items, 'a')
      const changed = items.map((item, i) => (i === size >> 1 ? {kind: 'c' as const} : item))
      const {result, work} = countWork(() => counts.count(changed, 'c'))
      expect(result).to.equal(changed.filter((item) => item.kind === 'c').length)
      return work
    }
    const [small, large] = [workAt(1_000), workAt(10_000)]
    expect(large, `work among 10,000: ${large}, among 1,000: ${small}`).to.equal(small)
  })
})
