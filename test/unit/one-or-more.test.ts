/** The lists the kept plan holds by key (src/lib/net/one-or-more.ts): the item alone, an array from the second on. */
import {expect} from 'chai'
import {itemsOf, withItem, withoutItem, type OneOrMore} from '../../src/lib/net/one-or-more.js'

describe('OneOrMore', () => {
  const [a, b, c] = [{name: 'a'}, {name: 'b'}, {name: 'c'}]

  it('keeps one item as itself and several in the order they came', () => {
    let list: OneOrMore<{name: string}> | undefined
    expect(itemsOf(list)).to.deep.equal([])
    list = withItem(list, a)
    expect(list).to.equal(a)
    expect(itemsOf(list)).to.deep.equal([a])
    list = withItem(withItem(list, b), c)
    expect(itemsOf(list)).to.have.ordered.members([a, b, c])
  })

  it('goes back to the item alone when one is left, and to nothing when none is', () => {
    let list: OneOrMore<{name: string}> | undefined = withItem(withItem(withItem(undefined, a), b), c)
    list = withoutItem(list, b)
    expect(itemsOf(list)).to.have.ordered.members([a, c])
    list = withoutItem(list, a)
    expect(list).to.equal(c)
    expect(withoutItem(list, a)).to.equal(c)
    expect(withoutItem(list, c)).to.equal(undefined)
  })
})
