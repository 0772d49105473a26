import {expect} from 'chai'
import fc from 'fast-check'
import {SortedObjects} from '../../src/lib/source/kube/sorted.js'

type Item = {metadata: {namespace: string; name: string}; value: number}
/** An object filed under `key`, namespace/name. */
const item = (key: string, value: number): Item => {
  const [namespace, name] = key.split('/') as [string, string]
  return {metadata: {namespace, name}, value}
}

describe('the source cache sorted by key', () => {
  it('always hands out what sorting its keys gives, over random sets, deletes and clears', () => {
    // Namespaces that begin others ("a" and "a-b", "a.b", "ab"), where the slash decides, and a cluster-scoped object ("/z").
    const keys = ['a/x', 'a/y', 'b/x', 'c/z', 'a/a', 'a-b/x', 'a.b/a', 'ab/a', '/z', 'a0/a']
    const op = fc.oneof(
      fc.record({kind: fc.constant('set' as const), key: fc.constantFrom(...keys), value: fc.nat(9)}),
      fc.record({kind: fc.constant('delete' as const), key: fc.constantFrom(...keys)}),
      fc.constant({kind: 'clear' as const}),
      fc.constant({kind: 'read' as const}),
      // More keys coming or going at once than are put in one by one: the keys are sorted again.
      fc.record({kind: fc.constant('many' as const), count: fc.integer({min: 1, max: 80}), remove: fc.boolean()}),
    )
    fc.assert(
      fc.property(fc.array(op, {maxLength: 30}), (ops) => {
        const cache = new SortedObjects<Item>()
        const model = new Map<string, Item>()
        const handedOut: [readonly Item[], Item[]][] = []
        for (const o of ops) {
          if (o.kind === 'set') {
            const object = item(o.key, o.value)
            cache.set(object)
            model.set(o.key, object)
          } else if (o.kind === 'delete') {
            expect(cache.delete(...(o.key.split('/') as [string, string]))).to.equal(model.delete(o.key))
          } else if (o.kind === 'many') {
            for (let i = 0; i < o.count; i++) {
              const key = `m/${i}`
              if (o.remove) expect(cache.delete('m', String(i))).to.equal(model.delete(key))
              else {
                const object = item(key, i)
                cache.set(object)
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
            expect(cache.size).to.equal(model.size)
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
    const cache = new SortedObjects<Item>()
    const values = (list: readonly Item[]) => list.map((object) => `${object.metadata.name}${object.value}`)
    cache.set(item('shop/b', 1))
    cache.set(item('shop/a', 1))
    const first = cache.sorted()
    expect(values(first)).to.deep.equal(['a1', 'b1'])
    expect(cache.sorted()).to.equal(first)
    cache.set(item('shop/b', 2))
    const second = cache.sorted()
    expect(second).to.not.equal(first)
    expect(values(second)).to.deep.equal(['a1', 'b2'])
    expect(values(first)).to.deep.equal(['a1', 'b1'])
  })

  it('hands out an object by namespace and name, the one set last', () => {
    const cache = new SortedObjects<Item>()
    const next = item('shop/web', 2)
    cache.set(item('shop/web', 1))
    cache.set(next)
    expect(cache.get('shop', 'web')).to.equal(next)
    expect(cache.get('shop', 'db')).to.equal(undefined)
    expect(cache.get('ops', 'web')).to.equal(undefined)
    expect([...cache.values()]).to.deep.equal([next])
  })
})
