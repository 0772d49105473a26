/** Reads back what iptables-save and ipset save print into the backend's state types; pure and linear. */
import {TABLES} from './types.js'
import type {ChainState, IpsetState, TableName, TableState} from './types.js'
import {compareText} from '../../plan/order.js'
import {ruleWords} from '../iptables-syntax.js'
import {strictlyAscending} from './diff.js'
import {goJumpTarget, isGoSharedChain, SHARED_CHAINS} from './legacy-names.js'
import {isOwnedName} from './names.js'
import {detached} from '../../net/shared-strings.js'

const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'])

/** One table of iptables-save output: what smartnat owns, and a tally of everything else. */
export interface ParsedTable extends TableState {
  /** Declarations of chains smartnat does not own (built-in ones included), as printed: `:FORWARD DROP`. */
  foreignChains: string[]
  /** Rules that are neither in an owned chain nor a jump into one. */
  foreignRules: number
}

export type ParsedIptables = Record<TableName, ParsedTable>

/** The chain a rule jumps or goes to (`-j`/`-g`), if any; targets come last in iptables-save output. */
export function ruleTarget(words: readonly string[]): string | undefined {
  for (let i = words.length - 2; i >= 0; i--) {
    if (words[i] === '-j' || words[i] === '-g') return words[i + 1]
  }
  return undefined
}

function emptyTable(): ParsedTable {
  return {chains: [], jumps: [], foreignChains: [], foreignRules: 0}
}

/** Parses `iptables-save` output: owned chains with their rules and the jumps into them from built-in chains. */
export function parseIptablesSave(text: string): ParsedIptables {
  const parser = new IptablesSaveParser()
  for (const line of text.split('\n')) parser.line(line)
  return parser.finish()
}

/**
 * `parseIptablesSave` fed one line at a time as the output arrives (`line`, then `finish` once it
 * ended): what it keeps of a line is the line it was given or a copy, never a slice of it. Read
 * against `like` (the tables a daemon rendered last), a chain whose rules come as they are there
 * gets that chain's list of rules instead of a copy of it.
 */
export class IptablesSaveParser {
  private readonly tables = Object.fromEntries(TABLES.map((t) => [t, emptyTable()])) as ParsedIptables
  // Per table: the rules outside smartnat's chains and jumps that enter a chain whose name the Go controller used too.
  private readonly sharedEntries = new Map<ParsedTable, Map<string, string[]>>()
  private table: ParsedTable | undefined
  private owned = new Map<string, ChainState>()
  /** The chains of `like`'s table of the table being read, by name. */
  private likeChains = new Map<string, ChainState>()
  /** Chains read against those: how many of their rules came as expected, until one did not. */
  private readonly against = new Map<ChainState, {like: ChainState; met: number; diverged: boolean}>()

  constructor(private readonly like?: Readonly<Record<TableName, TableState>>) {}

  line(raw: string): void {
    const line = raw.trimEnd()
    if (line === '' || line.startsWith('#')) return
    if (line.startsWith('*')) {
      const name = line.slice(1)
      const known = (TABLES as readonly string[]).includes(name)
      this.table = known ? this.tables[name as TableName] : undefined
      this.owned = new Map()
      this.likeChains = new Map(known && this.like ? this.like[name as TableName].chains.map((chain) => [chain.name, chain]) : [])
      return
    }
    const {table} = this
    if (!table || line === 'COMMIT') return
    if (line.startsWith(':')) {
      const [name = '', policy = ''] = line.slice(1).split(' ')
      if (isOwnedName(name)) {
        const chain = {name: detached(name), rules: []}
        this.owned.set(chain.name, chain)
        table.chains.push(chain)
        const like = this.likeChains.get(chain.name)
        if (like) this.against.set(chain, {like, met: 0, diverged: false})
      } else {
        table.foreignChains.push(`:${name} ${policy}`)
      }
      return
    }
    if (!line.startsWith('-A ')) return
    const chainName = line.slice(3, line.indexOf(' ', 3) === -1 ? undefined : line.indexOf(' ', 3))
    const chain = this.owned.get(chainName)
    if (chain) {
      const expected = this.against.get(chain)
      if (expected && !expected.diverged) {
        if (expected.like.rules[expected.met] === line) {
          expected.met++
          return
        }
        expected.diverged = true
        chain.rules.push(...expected.like.rules.slice(0, expected.met))
      }
      chain.rules.push(line)
      return
    }
    const target = line.includes(' SNM-') ? ruleTarget(ruleWords(line)) : undefined
    // The Go controller's jumps enter chains of smartnat's names too; its comment tells them apart.
    if (target !== undefined && BUILTIN_CHAINS.has(chainName) && isOwnedName(target) && goJumpTarget(line) === undefined) {
      table.jumps.push(line)
      return
    }
    table.foreignRules++
    if (target !== undefined && SHARED_CHAINS.has(target)) {
      const entries = this.sharedEntries.get(table) ?? new Map<string, string[]>()
      this.sharedEntries.set(table, entries.set(target, [...(entries.get(target) ?? []), line]))
    }
  }

  /** The output has ended: the tables as read. */
  finish(): ParsedIptables {
    for (const [chain, {like, met, diverged}] of this.against) {
      if (!diverged) chain.rules = met === like.rules.length ? like.rules : like.rules.slice(0, met)
    }
    for (const parsed of Object.values(this.tables)) {
      const entries = this.sharedEntries.get(parsed)
      dropGoSharedChains(parsed, entries)
      claimGoJumpsIntoOwnChains(parsed, entries)
    }
    return this.tables
  }
}

/**
 * A Go controller's jump into a chain that is smartnat's (after a sync without --migrate) makes
 * packets go through smartnat's rules twice, and keeps the chain from being deleted: it counts as a
 * stale jump of smartnat's, which the next sync or flush deletes.
 */
function claimGoJumpsIntoOwnChains(table: ParsedTable, entries: ReadonlyMap<string, string[]> | undefined): void {
  for (const [name, lines] of entries ?? []) {
    if (!table.chains.some((c) => c.name === name)) continue
    for (const line of lines) {
      if (goJumpTarget(line) !== name || !BUILTIN_CHAINS.has(line.slice(3, line.indexOf(' ', 3)))) continue
      table.jumps.push(line)
      table.foreignRules--
    }
  }
}

/** A chain of a name both use, holding only the Go controller's rules and entered only by its jumps, is not smartnat's. */
function dropGoSharedChains(table: ParsedTable, entries: ReadonlyMap<string, string[]> | undefined): void {
  for (const chain of table.chains.filter((c) => SHARED_CHAINS.has(c.name))) {
    const ownJump = table.jumps.some((jump) => ruleTarget(ruleWords(jump)) === chain.name)
    if (ownJump || !isGoSharedChain(chain.rules, entries?.get(chain.name) ?? [])) continue
    table.chains.splice(table.chains.indexOf(chain), 1)
    table.foreignChains.push(`:${chain.name} -`)
    table.foreignRules += chain.rules.length
  }
}

export interface ParsedIpsets {
  /** Owned sets, sorted by name, entries sorted. */
  sets: IpsetState[]
  /** Names of sets smartnat does not own. */
  foreignSets: string[]
}

/** Creation options without `initval`, which the kernel picks at random and so never compares equal. */
function stableOptions(words: string[]): string {
  const kept: string[] = []
  for (let i = 0; i < words.length; i++) {
    if (words[i] === 'initval') i++
    else kept.push(words[i]!)
  }
  return kept.join(' ')
}

/** Parses `ipset save` output into the sets smartnat owns. */
export function parseIpsetSave(text: string): ParsedIpsets {
  const parser = new IpsetSaveParser()
  for (const line of text.split('\n')) parser.line(line)
  return parser.finish()
}

/**
 * `parseIpsetSave` fed one line at a time as the output arrives, as `IptablesSaveParser` is. Read
 * against `like` (the sets a daemon rendered last), a set of the same type whose entries are those
 * gets that set's list of entries instead of a copy: its entries are counted off as they come, and
 * only those it lacks are kept.
 */
export class IpsetSaveParser {
  private readonly owned = new Map<string, IpsetState>()
  private readonly foreignSets: string[] = []
  private readonly like: ReadonlyMap<string, IpsetState>
  /** Sets read against those: their entries not met yet. */
  private readonly against = new Map<IpsetState, {like: IpsetState; unmet: Set<string>}>()

  constructor(like: readonly IpsetState[] = []) {
    this.like = new Map(like.map((set) => [set.name, set]))
  }

  line(raw: string): void {
    const line = raw.trimEnd()
    if (line.startsWith('add ')) {
      const space = line.indexOf(' ', 4)
      if (space === -1) return
      const set = this.owned.get(line.slice(4, space))
      if (!set) return
      const entry = line.slice(space + 1)
      if (this.against.get(set)?.unmet.delete(entry)) return
      // Copied: a slice would keep the whole line alive, `add` and the set's name with it.
      set.entries.push(detached(entry))
    } else if (line.startsWith('create ')) {
      const [, name = '', type = '', ...options] = line.split(' ')
      if (!isOwnedName(name)) {
        this.foreignSets.push(name)
        return
      }
      const set = {name: detached(name), type: detached(type), options: stableOptions(options), entries: []}
      this.owned.set(name, set)
      const like = this.like.get(name)
      if (like?.type === set.type) this.against.set(set, {like, unmet: new Set(like.entries)})
    }
  }

  /** The output has ended: the sets as read, sorted. */
  finish(): ParsedIpsets {
    const sets = [...this.owned.values()].sort((a, b) => compareText(a.name, b.name))
    for (const set of sets) {
      const against = this.against.get(set)
      // Shared only when sorted, as a render's are and a set read must be.
      if (against && against.unmet.size === 0 && set.entries.length === 0 && strictlyAscending(against.like.entries)) {
        set.entries = against.like.entries
        continue
      }
      if (against) set.entries = against.like.entries.filter((entry) => !against.unmet.has(entry)).concat(set.entries)
      // The default sort orders strings by code unit, exactly as compareText does, without a call per comparison.
      set.entries.sort()
    }
    return {sets, foreignSets: this.foreignSets}
  }
}
