import {expect} from 'chai'
import fc from 'fast-check'
import {SortedObjects} from '../../src/lib/source/kube/sorted.js'

describe('the source cache sorted by key', () => {
  it('always hands out what sorting its keys gives, over random sets, deletes and clears', () => {
    const op = fc.oneof(
      fc.record({kind: fc.constant('set' as const), key: fc.constantFrom('a/x', 'a/y', 'b/x', 'c/z', 'a/a'), value: fc.nat(9)}),
      fc.record({kind: fc.constant('delete' as const), key: fc.constantFrom('a/x', 'b/x', 'c/z')}),
      fc.constant({kind: 'clear' as const}),
      fc.constant({kind: 'read' as const}),
      // More keys coming or going at once than are put in one by one: the keys are sorted again.
      fc.record({kind: fc.constant('many' as const), count: fc.integer({min: 1, max: 80}), remove: fc.boolean()}),
    )
    fc.assert(
      fc.property(fc.array(op, {maxLength: 30}), (ops) => {
        const cache = new SortedObjects<{value: number}>()
        const model = new Map<string, {value: number}>()
        const handedOut: [readonly {value: number}[], {value: number}[]][] = []
        for (const o of ops) {
          if (o.kind === 'set') {
            const object = {value: o.value}
            cache.set(o.key, object)
            model.set(o.key, object)
          } else if (o.kind === 'delete') {
            expect(cache.delete(o.key)).to.equal(model.delete(o.key))
          } else if (o.kind === 'many') {
            for (let i = 0; i < o.count; i++) {
              const key = `m/${i}`
              if (o.remove) expect(cache.delete(key)).to.equal(model.delete(key))
              else {
                const object = {value: i}
                cache.set(key, object)
                model.set(key, object)
              }
            }
          } else if (o.kind === 'clear') {
            cache.clear()
            model.clear()
          } else {
            const list = cache.sorted()
            handedOut.push([list, [...list]])
            expect(list).to.deep.equal([...model.keys()].sort().map((key) => model.get(key)))
            list.forEach((object, i) => expect(object).to.equal(model.get([...model.keys()].sort()[i]!)))
          }
        }
        // An array once handed out never changes afterwards: a planner compares the next one with it.
        for (const [list, copy] of handedOut) list.forEach((object, i) => expect(object).to.equal(copy[i]))
      }),
      {numRuns: 300, seed: 19_010},
    )
  })

  it('returns the same array while nothing changed, and a patched copy when objects were only replaced', () => {
    const cache = new SortedObjects<string>()
    cache.set('b', 'b1')
    cache.set('a', 'a1')
    const first = cache.sorted()
    expect(first).to.deep.equal(['a1', 'b1'])
    expect(cache.sorted()).to.equal(first)
    cache.set('b', 'b2')
    const second = cache.sorted()
    expect(second).to.not.equal(first)
    expect(second).to.deep.equal(['a1', 'b2'])
    expect(first).to.deep.equal(['a1', 'b1'])
  })
})
