/**
 * The nftables read against the sets a daemon rendered last (parse.ts, NftTableReader's `like`): a
 * set the kernel lists as it is there is that very set, so that a resync holds no copy of it and the
 * diff skips it; any other reads as it would without them.
 */
import {expect} from 'chai'
import fc from 'fast-check'
import {parseNftJson} from '../../src/lib/backend/nftables/parse.js'
import {readNftTable} from '../../src/lib/backend/nftables/read.js'
import {setMadeOnRead} from '../../src/lib/backend/nftables/syntax.js'
import type {NftSet, NftTable} from '../../src/lib/backend/nftables/types.js'
import type {RunOptions, Runner} from '../../src/lib/host/runner.js'
import {DIRECT_JSON} from './fixtures/nft-direct-capture.js'

type Item = Record<string, Record<string, unknown>>

/** The direct model's table as a real nft listed it: sets and maps of every kind smartnat makes, a dynamic one among them. */
const LISTED = (JSON.parse(DIRECT_JSON) as {nftables: Item[]}).nftables

/** The items that are sets or maps with elements, by index, with their elements. */
const FILLED = LISTED.flatMap((item, index) => {
  const body = Object.values(item)[0]!
  return Array.isArray(body.elem) && body.elem.length > 0 ? [{index, name: String(body.name), elem: body.elem as unknown[]}] : []
})

/** The listing with the elements of each filled set given by `elements` (in that order), and the sets at `left` left out. */
function listing(elements: ReadonlyMap<number, unknown[]>, left: ReadonlySet<number> = new Set()): string {
  const items = LISTED.flatMap((item, index) => {
    if (left.has(index)) return []
    const chosen = elements.get(index)
    if (chosen === undefined) return [item]
    const [kind, body] = Object.entries(item)[0]!
    const {elem: _elem, ...rest} = body
    return [{[kind]: chosen.length === 0 ? rest : {...rest, elem: chosen}}]
  })
  return JSON.stringify({nftables: items})
}

/**
 * `table` as a daemon keeps it: each set makes its elements when read, or one by one; `reads`
 * counts the whole arrays made (under the set's name) and the passes one by one (under `each NAME`).
 */
function asDaemonKeeps(table: NftTable, reads: Map<string, number>): NftTable {
  const count = (key: string) => reads.set(key, (reads.get(key) ?? 0) + 1)
  const sets = table.sets.map((set) => {
    const {elements} = set
    const made = setMadeOnRead(
      set.name,
      set,
      () => {
        count(set.name)
        return [...elements]
      },
      (visit) => {
        count(`each ${set.name}`)
        for (const element of elements) visit(element)
      },
    )
    made.flags = [...set.flags]
    if (set.timeout !== undefined) made.timeout = set.timeout
    return made
  })
  return {sets, chains: table.chains}
}

function setNamed(table: NftTable, name: string): NftSet | undefined {
  return table.sets.find((set) => set.name === name)
}

describe('the nftables read against the sets rendered last', () => {
  it('gives the sets expected themselves when the kernel lists them so, making their elements once and one by one, and the rest as read', () => {
    const plain = parseNftJson(DIRECT_JSON)
    const reads = new Map<string, number>()
    const like = asDaemonKeeps(plain, reads)
    const read = parseNftJson(DIRECT_JSON, like)
    // Counted before the comparison below reads them again.
    for (const set of read.sets) {
      // The affinity sets are dynamic: their elements are the kernel's and are never compared.
      const dynamic = set.flags.includes('dynamic')
      expect(set === setNamed(like, set.name), set.name).to.equal(!dynamic)
      // Made one by one, once, and never as a whole array.
      expect(reads.get(`each ${set.name}`) ?? 0, set.name).to.equal(dynamic ? 0 : 1)
      expect(reads.get(set.name) ?? 0, set.name).to.equal(0)
    }
    expect(read).to.deep.equal(plain)
    expect(read.sets.filter((set) => !set.flags.includes('dynamic'))).to.have.length.above(8)
  })

  it('reads a set the kernel lists otherwise as it would without the sets expected: elements missing, added, or declared otherwise', () => {
    const sets = fc.tuple(
      ...FILLED.map(({elem}) =>
        fc.record({
          kernel: fc.shuffledSubarray(elem),
          expected: fc.subarray(elem),
          // Left out of the listing the expected sets come from, or declared with a flag more there.
          how: fc.constantFrom('listed', 'listed', 'listed', 'absent', 'redeclared'),
          // Left out of the kernel's listing.
          gone: fc.boolean(),
        }),
      ),
    )
    fc.assert(
      fc.property(sets, (cases) => {
        const kernel = new Map(FILLED.map(({index}, i) => [index, cases[i]!.kernel]))
        const gone = new Set(FILLED.flatMap(({index}, i) => (cases[i]!.gone ? [index] : [])))
        const expected = new Map(FILLED.map(({index}, i) => [index, cases[i]!.expected]))
        const absent = new Set(FILLED.flatMap(({index}, i) => (cases[i]!.how === 'absent' ? [index] : [])))
        const expectedTable = parseNftJson(listing(expected, absent))
        for (const [i, {name}] of FILLED.entries()) if (cases[i]!.how === 'redeclared') setNamed(expectedTable, name)!.flags.push('interval')
        const reads = new Map<string, number>()
        const like = asDaemonKeeps(expectedTable, reads)
        const text = listing(kernel, gone)
        const plain = parseNftJson(text)
        const read = parseNftJson(text, like)
        // Counted before the comparison below reads them again: one by one, once to count them off and once more for a set that differs.
        for (const {name} of FILLED) {
          expect(reads.get(name) ?? 0, name).to.equal(0)
          expect(reads.get(`each ${name}`) ?? 0, name).to.be.at.most(2)
        }
        expect(read).to.deep.equal(plain)
        for (const [i, {name}] of FILLED.entries()) {
          const set = setNamed(read, name)
          if (cases[i]!.gone) {
            expect(set, name).to.equal(undefined)
            continue
          }
          const wanted = setNamed(expectedTable, name)
          const same = cases[i]!.how === 'listed' && !set!.flags.includes('dynamic') && JSON.stringify(wanted!.elements) === JSON.stringify(set!.elements)
          expect(set === setNamed(like, name), name).to.equal(same)
        }
      }),
      {numRuns: 150},
    )
  })

  it('does the same as the listing arrives in chunks of any size', async () => {
    const like = asDaemonKeeps(parseNftJson(DIRECT_JSON), new Map())
    for (const size of [1, 61, 4096]) {
      const runner: Runner = {
        run: async (_command: string, _args: string[], options: RunOptions = {}) => {
          const bytes = Buffer.from(DIRECT_JSON)
          for (let from = 0; from < bytes.length; from += size) options.onStdout!(bytes.subarray(from, from + size))
          return {stdout: '', stderr: '', exitCode: 0}
        },
      }
      const read = (await readNftTable(runner, like))!
      expect(read, `chunks of ${size}`).to.deep.equal(parseNftJson(DIRECT_JSON))
      expect(
        read.sets.filter((set) => set === setNamed(like, set.name)).map((set) => set.name),
        `chunks of ${size}`,
      ).to.deep.equal(read.sets.filter((set) => !set.flags.includes('dynamic')).map((set) => set.name))
    }
  })
})
