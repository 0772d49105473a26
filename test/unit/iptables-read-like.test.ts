/**
 * The iptables read against the chains and sets a daemon rendered last (parse.ts, `like`): a chain
 * or set the kernel lists as it is there shares its list of rules or entries, so that a resync holds
 * no copy of them; any other reads as it would without them.
 */
import {expect} from 'chai'
import fc from 'fast-check'
import {IpsetSaveParser, IptablesSaveParser, parseIpsetSave} from '../../src/lib/backend/iptables/parse.js'
import {TABLES, type IpsetState, type TableName, type TableState} from '../../src/lib/backend/iptables/types.js'
import {IPSET_SAVE, IPTABLES_SAVE} from './fixtures/kernel-capture.js'

const SETS = `${IPSET_SAVE}create SNM-EGRESS hash:ip family inet hashsize 1024 maxelem 65536 comment\nadd SNM-EGRESS 198.19.1.10 comment "ns/é €"\n`

function parsedTables(text: string, like?: Record<TableName, TableState>): Record<TableName, TableState> {
  const parser = new IptablesSaveParser(like)
  for (const line of text.split('\n')) parser.line(line)
  const parsed = parser.finish()
  return Object.fromEntries(TABLES.map((t) => [t, {chains: parsed[t].chains, jumps: parsed[t].jumps}])) as Record<TableName, TableState>
}

function parsedSets(text: string, like?: IpsetState[]): IpsetState[] {
  const parser = new IpsetSaveParser(like)
  for (const line of text.split('\n')) parser.line(line)
  return parser.finish().sets
}

/** A copy of `tables` whose every list is a new array, as a render's are. */
function copyTables(tables: Record<TableName, TableState>): Record<TableName, TableState> {
  return Object.fromEntries(TABLES.map((t) => [t, {chains: tables[t].chains.map((c) => ({name: c.name, rules: [...c.rules]})), jumps: [...tables[t].jumps]}])) as Record<TableName, TableState>
}

/** How a list the daemon rendered may differ from the kernel's. */
const EDIT = fc.constantFrom('same', 'same', 'dropped', 'added', 'swapped', 'emptied', 'gone')

function edited<T>(list: readonly T[], edit: string, extra: T, at: number): T[] {
  const copy = [...list]
  const i = list.length === 0 ? 0 : at % list.length
  if (edit === 'dropped') copy.splice(i, 1)
  else if (edit === 'added') copy.splice(i, 0, extra)
  else if (edit === 'swapped' && copy.length > 1) [copy[0], copy[copy.length - 1]] = [copy[copy.length - 1]!, copy[0]!]
  else if (edit === 'emptied') copy.length = 0
  return copy
}

describe('the iptables read against the chains and sets rendered last', () => {
  it("gives each chain and set found as rendered the render's own list, and reads the same state", () => {
    const plainTables = parsedTables(IPTABLES_SAVE)
    const likeTables = copyTables(plainTables)
    const tables = parsedTables(IPTABLES_SAVE, likeTables)
    expect(tables).to.deep.equal(plainTables)
    const chains = TABLES.flatMap((t) => tables[t].chains.map((chain, i) => [chain, likeTables[t].chains[i]!] as const))
    expect(chains).to.have.length.above(3)
    for (const [chain, like] of chains) expect(chain.rules === like.rules, chain.name).to.equal(true)

    const plainSets = parseIpsetSave(SETS).sets
    const likeSets = plainSets.map((set) => ({...set, options: 'family inet hashsize 1024 maxelem 65536', entries: [...set.entries]}))
    const sets = parsedSets(SETS, likeSets)
    expect(sets).to.deep.equal(plainSets)
    expect(sets).to.have.length.above(2)
    // The options are the kernel's, which grows the hash; the entries the render's.
    for (const [i, set] of sets.entries()) expect(set.entries === likeSets[i]!.entries, set.name).to.equal(true)
  })

  it('reads chains and sets the kernel lists otherwise as it would without them: rules or entries missing, added, moved, or of another type', () => {
    const plainTables = parsedTables(IPTABLES_SAVE)
    const chains = TABLES.flatMap((t) => plainTables[t].chains.map((chain, i) => ({t, i, chain})))
    const plainSets = parseIpsetSave(SETS).sets
    const cases = fc.record({
      chains: fc.tuple(...chains.map(() => fc.record({edit: EDIT, at: fc.nat()}))),
      sets: fc.tuple(...plainSets.map(() => fc.record({edit: fc.oneof(EDIT, fc.constant('retyped')), at: fc.nat()}))),
    })
    fc.assert(
      fc.property(cases, (drift) => {
        const likeTables = copyTables(plainTables)
        for (const [k, {t, i, chain}] of chains.entries()) {
          const {edit, at} = drift.chains[k]!
          likeTables[t].chains[i] = {name: edit === 'gone' ? `${chain.name}-OTHER` : chain.name, rules: edited(chain.rules, edit, `-A ${chain.name} -j RETURN`, at)}
        }
        const likeSets = plainSets.map((set, k) => {
          const {edit, at} = drift.sets[k]!
          const name = edit === 'gone' ? `${set.name}-OTHER` : set.name
          const entries = edited(set.entries, edit, '198.18.255.254', at)
          return {...set, name, type: edit === 'retyped' ? 'hash:net' : set.type, entries}
        })
        const tables = parsedTables(IPTABLES_SAVE, likeTables)
        expect(tables).to.deep.equal(plainTables)
        for (const [k, {t, i}] of chains.entries()) {
          const shared = tables[t].chains[i]!.rules === likeTables[t].chains[i]!.rules
          expect(shared, tables[t].chains[i]!.name).to.equal(drift.chains[k]!.edit === 'same' || (drift.chains[k]!.edit === 'swapped' && plainTables[t].chains[i]!.rules.length < 2))
        }
        const sets = parsedSets(SETS, likeSets)
        expect(sets).to.deep.equal(plainSets)
        for (const [k, set] of sets.entries()) {
          const {edit} = drift.sets[k]!
          // A list out of order is not shared: a set read keeps its entries sorted.
          const same = edit === 'same' || (edit === 'swapped' && set.entries.length < 2) || (edit === 'emptied' && set.entries.length === 0)
          expect(set.entries === likeSets[k]!.entries, set.name).to.equal(same)
        }
      }),
      {numRuns: 200},
    )
  })
})
