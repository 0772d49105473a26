/** nft's JSON listing taken apart as its bytes arrive (json-items.ts), so that a read never holds the whole listing, as text or as a tree. */
import {expect} from 'chai'
import fc from 'fast-check'
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'
import {NftListingSplitter, type NftListingSink} from '../../src/lib/backend/nftables/json-items.js'
import {parseNftJson} from '../../src/lib/backend/nftables/parse.js'
import {readNftTable} from '../../src/lib/backend/nftables/read.js'
import type {RunOptions, RunResult, Runner} from '../../src/lib/host/runner.js'
import {DIRECT_JSON} from './fixtures/nft-direct-capture.js'

type Event = ['item' | 'start' | 'element' | 'end', unknown]

/** What a splitter hands over, in order, and the items put back together as JSON.parse gives them (a set's elements back in its "elem"). */
class Collected implements NftListingSink {
  readonly events: Event[] = []
  readonly items: unknown[] = []
  private elements: unknown[] = []

  item(value: unknown): void {
    this.events.push(['item', value])
    this.items.push(value)
  }

  elementsStart(head: unknown): void {
    this.events.push(['start', head])
    this.elements = []
  }

  element(value: unknown): void {
    this.events.push(['element', value])
    this.elements.push(value)
  }

  elementsEnd(item: unknown): void {
    this.events.push(['end', item])
    const [kind, body] = Object.entries(item as Record<string, Record<string, unknown>>)[0]!
    expect(body.elem, 'the item keeps an empty "elem"').to.deep.equal([])
    this.items.push({[kind]: {...body, elem: this.elements}})
  }
}

/** The listing `text` fed to a splitter in the pieces its bytes are cut into at `cuts`; what it handed over, and what `end` said. */
function split(text: string | Buffer, cuts: number[] = []): Collected & {plain: boolean} {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text)
  const sink = new Collected()
  const splitter = new NftListingSplitter(sink)
  let from = 0
  for (const cut of [...cuts].sort((a, b) => a - b)) {
    splitter.write(bytes.subarray(from, cut))
    from = cut
  }
  splitter.write(bytes.subarray(from))
  return Object.assign(sink, {plain: splitter.end()})
}

function items(text: string): unknown[] {
  return split(text).items
}

/** A listing with what splitting could break: characters of 2, 3 and 4 bytes, escapes of every kind, brackets in strings, numbers, whitespace, and sets and maps with elements. */
const AWKWARD = ` \n{ "nftables" :\t[ ${[
  {metainfo: {version: '1.0.6', release_name: 'Lester Gooch #5'}},
  {table: {family: 'ip', name: 'smartnat', comment: 'é日本😀'}},
  {set: {family: 'ip', name: 'allowed', table: 'smartnat', type: ['ipv4_addr', 'inet_service'], elem: [{elem: {val: {concat: ['198.18.0.10', 80]}, comment: 'ns/é "q" \\ ]},{'}}, {concat: ['198.18.0.11', 443]}, 7, 'x😀']}},
  {map: {family: 'ip', name: 'direct', table: 'smartnat', type: 'ipv4_addr', map: 'verdict', elem: [[{elem: {val: '198.18.0.12', comment: '\n\t\u0001'}}, {goto: {target: 'pick_3'}}]], handle: -1.5e3}},
  {set: {family: 'ip', name: 'empty', table: 'smartnat', type: 'ipv4_addr', elem: []}},
  {rule: {family: 'ip', table: 'smartnat', chain: 'c', comment: '"elem": [', expr: [{accept: null}]}},
  [true, false, null, -0.5, 'a\\"b'],
  'x',
  3,
]
  .map((item, i) => JSON.stringify(item, null, i % 2))
  .join(' ,\n')}, {"rule": {"comment": "\\u00e9\\/\\b"}} ]\n}\n`

describe('nft JSON listing, taken apart as it arrives', () => {
  it('gives the items JSON.parse finds, in order, for a listing nft printed', () => {
    expect(items(DIRECT_JSON)).to.deep.equal((JSON.parse(DIRECT_JSON) as {nftables: unknown[]}).nftables)
    expect(items(AWKWARD)).to.deep.equal((JSON.parse(AWKWARD) as {nftables: unknown[]}).nftables)
  })

  it('finds the items by brackets outside strings: brackets, commas, quotes and backslashes inside strings stay in their item', () => {
    const list = [{set: {comment: 'a]b,c}d{e[f'}}, {rule: {comment: 'say \\"hi\\", \\\\'}}, [1, [2, {x: ']'}]], 'x', 3, null]
    const text = ` \n{ "nftables" :\t[ ${list.map((item) => JSON.stringify(item)).join(' ,\n ')} ] }\n`
    expect(items(text)).to.deep.equal(list)
    expect(items('{"nftables": []}')).to.deep.equal([])
  })

  it('hands an item over as soon as its last byte is there, before the next is found broken', () => {
    const sink = new Collected()
    const splitter = new NftListingSplitter(sink)
    splitter.write(Buffer.from('{"nftables": [{"a": 1}'))
    expect(sink.events).to.deep.equal([['item', {a: 1}]])
    expect(() => splitter.write(Buffer.from(', {"b": x}]}'))).to.throw('nft -j list table: output is not JSON')
  })

  it("hands a set's or map's elements over one by one, each once it is complete, with the item around them", () => {
    const sink = new Collected()
    const splitter = new NftListingSplitter(sink)
    splitter.write(Buffer.from('{"nftables": [{"map": {"name": "m", "elem": [[{"concat": ["a", 1]}, "b"], [x'))
    expect(sink.events).to.deep.equal([
      ['start', {map: {name: 'm', elem: []}}],
      ['element', [{concat: ['a', 1]}, 'b']],
    ])
    expect(() => splitter.write(Buffer.from(']], "handle": 2}}]}'))).to.throw('nft -j list table: output is not JSON')
    const text = '{"nftables": [{"map": {"name": "m", "elem": [[{"concat": ["a", 1]}, "b"]], "handle": 2}}, {"set": {"name": "s", "elem" : [ ]}}]}'
    expect(split(text).events).to.deep.equal([
      ['start', {map: {name: 'm', elem: []}}],
      ['element', [{concat: ['a', 1]}, 'b']],
      ['end', {map: {name: 'm', elem: [], handle: 2}}],
      ['start', {set: {name: 's', elem: []}}],
      ['end', {set: {name: 's', elem: []}}],
    ])
  })

  it('hands over whole an item with "elem" deeper than its body, as a string value, not followed by an array, or not in a set or map', () => {
    const list = [
      {set: {name: 's', x: {elem: [1]}}},
      {set: {name: 'elem', comment: '"elem": ['}},
      {rule: {elem: [1]}},
      {map: {name: 'm', elem: 1}},
      {x: 1, set: {elem: [1]}},
    ]
    expect(split(`{"nftables": [${list.map((item) => JSON.stringify(item)).join(', ')}]}`).events).to.deep.equal(list.map((value) => ['item', value]))
  })

  it('starts again at a second "elem" in one item, as JSON.parse keeps the last', () => {
    const twice = '{"nftables": [{"set": {"elem": [1], "elem": [2, 3]}}]}'
    const taken = split(twice)
    expect(taken.events).to.deep.equal([
      ['start', {set: {elem: []}}],
      ['element', 1],
      ['start', {set: {elem: []}}],
      ['element', 2],
      ['element', 3],
      ['end', {set: {elem: []}}],
    ])
    expect(taken.items).to.deep.equal((JSON.parse(twice) as {nftables: unknown[]}).nftables)
  })

  it('reads the same listing whatever bytes its chunks end at: in a character, in an escape, in a number, between tokens', () => {
    const bytes = Buffer.from(AWKWARD)
    expect(bytes.length).to.be.above(AWKWARD.length)
    const whole = split(bytes)
    for (let cut = 0; cut <= bytes.length; cut++) expect(split(bytes, [cut]).events, `cut at ${cut}`).to.deep.equal(whole.events)
    expect(split(bytes, Array.from({length: bytes.length}, (_, i) => i)).events, 'byte by byte').to.deep.equal(whole.events)
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({min: 0, max: bytes.length}), {minLength: 2, maxLength: 40}), (cuts) => {
        expect(split(bytes, cuts).events).to.deep.equal(whole.events)
      }),
      {numRuns: 300, seed: 19_301},
    )
    const direct = Buffer.from(DIRECT_JSON)
    const expected = split(direct).events
    fc.assert(
      fc.property(fc.uniqueArray(fc.integer({min: 0, max: direct.length}), {minLength: 1, maxLength: 200}), (cuts) => {
        expect(split(direct, cuts).events).to.deep.equal(expected)
      }),
      {numRuns: 100, seed: 19_302},
    )
  })

  it("holds no more than one element's bytes from earlier chunks, besides its set's header", () => {
    const elements = Array.from({length: 20_000}, (_, port) => [{elem: {val: {concat: ['198.18.0.10', 'tcp', port + 1]}, comment: `team/${'x'.repeat(port % 97)}é`}}, {concat: ['198.19.255.250', 8080]}])
    const map = {family: 'ip', name: 'endpoints', table: 'smartnat', type: ['ipv4_addr', 'inet_proto', 'inet_service'], map: ['ipv4_addr', 'inet_service'], elem: elements}
    const bytes = Buffer.from(JSON.stringify({nftables: [{table: {family: 'ip', name: 'smartnat'}}, {map}]}))
    const header = Buffer.byteLength(JSON.stringify({map: {...map, elem: []}}))
    const longest = Math.max(...elements.map((element) => Buffer.byteLength(JSON.stringify(element))))
    for (const size of [65_536, 1000, 61]) {
      const sink = new Collected()
      const splitter = new NftListingSplitter(sink)
      let most = 0
      for (let from = 0; from < bytes.length; from += size) {
        splitter.write(bytes.subarray(from, from + size))
        most = Math.max(most, splitter.heldBytes)
      }
      expect(splitter.end()).to.equal(true)
      expect(sink.events.filter(([kind]) => kind === 'element')).to.have.length(20_000)
      expect(most, `chunks of ${size}`).to.be.at.most(header + longest)
      expect(most, `chunks of ${size}`).to.be.above(0)
      expect(splitter.heldBytes).to.equal(0)
    }
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

  it('parses whole a listing that does not open as {"nftables": [, tells of one that goes on after the array, and fails where JSON.parse fails', () => {
    expect(split('{"other": 1, "nftables": [1]}')).to.include({plain: true}).and.to.have.property('items').that.deep.equals([1])
    expect(() => split('[{"nftables": [1]}]')).to.throw('nft -j list table: no "nftables" array')
    expect(split('{"nftables": [1], "other": 2}')).to.include({plain: false})
    for (const text of [
      '{"nftables": [1,]}',
      '{"nftables": [,1]}',
      '{"nftables": [1,,2]}',
      '{"nftables": [1 2]}',
      '{"nftables": [{"set": {"elem": [1,]}}]}',
      '{"nftables": [{"set": {"elem": [1 2]}}]}',
      '{"nftables": [1]',
      '{"nftables": [1]} x',
      '{"nftables": [1]}}',
      '\u00a0{"nftables": [1]}',
      '{"nftables": ["unterminated]}',
      '',
    ]) {
      expect(() => JSON.parse(text), text).to.throw(SyntaxError)
      expect(() => split(text), text).to.throw('nft -j list table: output is not JSON')
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
    // A second "nftables" after the first: the last, as JSON.parse reads it.
    expect(parseNftJson(`${compact.slice(0, -1)}, "nftables": []}`)).to.deep.equal({sets: [], chains: []})
  })

  it("reads a set's keys after its elements, and refuses those that would read them otherwise", () => {
    const listed = (JSON.parse(DIRECT_JSON) as {nftables: Record<string, Record<string, unknown>>[]}).nftables
    // The handle moved after the elements: `{..., "elem": [...], "handle": 36}`.
    const handleLast = listed.map((item) => Object.fromEntries(Object.entries(item).map(([kind, {handle, ...body}]) => [kind, {...body, handle}])))
    expect(JSON.stringify(handleLast)).to.include('"elem":[[{"elem":')
    expect(JSON.stringify(handleLast)).to.match(/\]\],"handle":\d+\}\}/)
    expect(parseNftJson(JSON.stringify({nftables: handleLast}))).to.deep.equal(parseNftJson(DIRECT_JSON))
    const flagsAfter = '{"nftables": [{"set": {"family": "ip", "name": "a", "table": "smartnat", "type": "ipv4_addr", "elem": ["198.18.0.1"], "flags": ["interval"]}}]}'
    expect(() => parseNftJson(flagsAfter)).to.throw('nft -j list table: set a has keys after its elements that change how they read')
  })
})

/** A runner whose nft hands `stdout` over in chunks of `size` bytes, as a process's pipe does. */
function chunkedNft(stdout: string, size: number, result: Partial<RunResult> = {}): Runner {
  return {
    run: async (_command: string, _args: string[], options: RunOptions = {}) => {
      const bytes = Buffer.from(stdout)
      for (let from = 0; from < bytes.length; from += size) options.onStdout!(bytes.subarray(from, from + size))
      return {stdout: '', stderr: '', exitCode: 0, ...result}
    },
  }
}

describe('readNftTable', () => {
  it('reads the listing as nft hands it over, chunk by chunk', async () => {
    expect(await readNftTable(chunkedNft(DIRECT_JSON, 100))).to.deep.equal(parseNftJson(DIRECT_JSON))
    expect(await readNftTable(chunkedNft(DIRECT_JSON, 1))).to.deep.equal(parseNftJson(DIRECT_JSON))
  })

  it("fails with the listing's own error, or the exit's when nft failed, and finds no table when nft says so", async () => {
    const broken = DIRECT_JSON.replace('"table"', '"table" "x"')
    await readNftTable(chunkedNft(broken, 100)).then(
      () => expect.fail('expected the read to fail'),
      (error: Error) => expect(error.message).to.equal('nft -j list table: output is not JSON'),
    )
    await readNftTable(chunkedNft(`${DIRECT_JSON.trimEnd().slice(0, -1)}, "x": 1}`, 100)).then(
      () => expect.fail('expected the read to fail'),
      (error: Error) => expect(error.message).to.equal('nft -j list table: output has more than the "nftables" array'),
    )
    expect(await readNftTable(chunkedNft('', 100, {exitCode: 1, stderr: 'Error: No such file or directory\n'}))).to.equal(undefined)
    await readNftTable(chunkedNft('{"nft', 100, {exitCode: 1, stderr: 'Error: Operation not permitted\n'})).then(
      () => expect.fail('expected the read to fail'),
      (error: Error) => expect(error.message).to.equal('reading kernel state: nft -j list table ip smartnat exited with 1: Error: Operation not permitted'),
    )
  })
})
