/** nft's JSON listing taken apart item by item (json-items.ts), so that a read never holds the whole listing's tree at once. */
import {expect} from 'chai'
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'
import {nftJsonItems} from '../../src/lib/backend/nftables/json-items.js'
import {parseNftJson} from '../../src/lib/backend/nftables/parse.js'
import {DIRECT_JSON} from './fixtures/nft-direct-capture.js'

/** The items as JSON.parse would give them: a set's elements, taken apart, put back into its "elem". */
function items(text: string): unknown[] | undefined {
  const iterable = nftJsonItems(text)
  return iterable && [...iterable].map(({value, elements}) => (elements ? withElements(value, [...elements]) : value))
}

function withElements(item: unknown, elements: unknown[]): unknown {
  const [kind, body] = Object.entries(item as Record<string, Record<string, unknown>>)[0]!
  expect(body.elem, 'the item keeps an empty "elem"').to.deep.equal([])
  return {[kind]: {...body, elem: elements}}
}

describe('nft JSON listing, item by item', () => {
  it('gives the items JSON.parse finds, in order, for a listing nft printed', () => {
    expect(items(DIRECT_JSON)).to.deep.equal((JSON.parse(DIRECT_JSON) as {nftables: unknown[]}).nftables)
  })

  it('finds the items by brackets outside strings: brackets, commas, quotes and backslashes inside strings stay in their item', () => {
    const list = [{set: {comment: 'a]b,c}d{e[f'}}, {rule: {comment: 'say \\"hi\\", \\\\'}}, [1, [2, {x: ']'}]], 'x', 3, null]
    const text = ` \n{ "nftables" :\t[ ${list.map((item) => JSON.stringify(item)).join(' ,\n ')} ] }\n`
    expect(items(text)).to.deep.equal(list)
    expect(items('{"nftables": []}')).to.deep.equal([])
  })

  it('parses an item only when the iteration reaches it: the first is there before the second is found broken', () => {
    const iterator = nftJsonItems('{"nftables": [{"a": 1}, {"b": x}]}')![Symbol.iterator]()
    expect(iterator.next().value).to.deep.equal({value: {a: 1}})
    expect(() => iterator.next()).to.throw('nft -j list table: output is not JSON')
  })

  it("gives a set's or map's elements one by one, each parsed only when the iteration reaches it", () => {
    const text = '{"nftables": [{"map": {"name": "m", "elem": [[{"concat": ["a", 1]}, "b"], [x]], "handle": 2}}, {"set": {"name": "s", "elem" : [ ]}}]}'
    const [map, set] = [...nftJsonItems(text)!]
    expect(map!.value).to.deep.equal({map: {name: 'm', elem: [], handle: 2}})
    const elements = map!.elements![Symbol.iterator]()
    expect(elements.next().value).to.deep.equal([{concat: ['a', 1]}, 'b'])
    expect(() => elements.next()).to.throw('nft -j list table: output is not JSON')
    expect(set!.value).to.deep.equal({set: {name: 's', elem: []}})
    expect([...set!.elements!]).to.deep.equal([])
  })

  it('parses whole an item with "elem" deeper than its body, as a string value, twice, or not followed by an array', () => {
    const list = [
      {set: {name: 's', x: {elem: [1]}}},
      {set: {name: 'elem', comment: '"elem": ['}},
      {rule: {elem: [1]}},
      {map: {name: 'm', elem: 1}},
    ]
    const taken = [...nftJsonItems(`{"nftables": [${list.map((item) => JSON.stringify(item)).join(', ')}]}`)!]
    expect(taken).to.deep.equal(list.map((value) => ({value})))
    const twice = '{"nftables": [{"set": {"elem": [1], "elem": [2]}}]}'
    expect([...nftJsonItems(twice)!]).to.deep.equal([{value: JSON.parse(twice).nftables[0]}])
  })

  it('keeps each element as its printed text and nothing of the listing', () => {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const comment = `team/${'x'.repeat(100)}`
    const listing = () => {
      const elements = Array.from({length: 20_000}, (_, port) => {
        const val = {concat: ['198.18.0.10', 'tcp', port + 1]}
        return [{elem: {val, comment}}, {concat: ['198.19.255.250', 8080]}]
      })
      const map = {family: 'ip', name: 'endpoints', table: 'smartnat', type: ['ipv4_addr', 'inet_proto', 'inet_service'], map: ['ipv4_addr', 'inet_service'], elem: elements}
      return JSON.stringify({nftables: [{table: {family: 'ip', name: 'smartnat'}}, {map}]})
    }
    // The listing is made and dropped in a call of its own (a frame can hold its temporaries to its end): what stays is what the table keeps.
    const read = () => parseNftJson(listing())
    gc()
    const before = process.memoryUsage().heapUsed
    const table = read()
    gc()
    const retained = process.memoryUsage().heapUsed - before
    const {elements} = table.sets[0]!
    expect(elements).to.have.length(20_000)
    expect(elements[0]).to.equal(`198.18.0.10 . tcp . 1 comment "${comment}" : 198.19.255.250 . 8080`)
    // The elements' characters are 3.3 MB; with their headers, the array and what else the heap
    // holds, 3.8-4.3 MB were kept. The listing would be 4.2 MB more, texts left in pieces more again.
    const text = elements.reduce((sum, element) => sum + element.length, 0)
    expect(retained).to.be.below(text + 2_000_000)
  })

  it('leaves any other shape to JSON.parse of the whole text', () => {
    for (const text of [
      '{"nftables": [1], "other": 2}',
      '{"other": 1, "nftables": [1]}',
      '[{"nftables": [1]}]',
      '{"nftables": [1,]}',
      '{"nftables": [,1]}',
      '{"nftables": [1,,2]}',
      '{"nftables": [1]',
      '{"nftables": [1]} x',
      '\u00a0{"nftables": [1]}',
      '{"nftables": ["unterminated]}',
    ]) {
      expect(nftJsonItems(text), text).to.equal(undefined)
    }
  })

  it('reads the same table and fails with the same errors as before', () => {
    expect(() => parseNftJson('{"nftables": [1,]}')).to.throw('nft -j list table: output is not JSON')
    expect(() => parseNftJson('{"nftables": [{"table": }]}')).to.throw('nft -j list table: output is not JSON')
    expect(() => parseNftJson('{"other": []}')).to.throw('nft -j list table: no "nftables" array')
    const compact = JSON.stringify(JSON.parse(DIRECT_JSON))
    expect(parseNftJson(`{"nftables": [${JSON.stringify({metainfo: {version: '1.0.6'}})}], "x": 1}`)).to.deep.equal({sets: [], chains: []})
    // Taken apart, and (with a key after the array) parsed whole: the same table.
    expect(parseNftJson(compact)).to.deep.equal(parseNftJson(`${compact.slice(0, -1)}, "x": 1}`))
  })
})
