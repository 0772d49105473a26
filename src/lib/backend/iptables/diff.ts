/** Compares desired and actual iptables-backend state and lists the writes that turn one into the other; pure. */
import {diffRouting, isEmptyRouting, type RoutingChanges} from '../../routing/diff.js'
import {ADDRESS_CHAIN_PREFIX} from './names.js'
import {TABLES} from './types.js'
import type {ChainState, IpsetState, IptablesState, TableName, TableState} from './types.js'

/** Rules deleted from and inserted into a chain that stays, instead of declaring it again. */
export interface ChainEdit {
  name: string
  /** Rules as iptables-save prints them (`-A CHAIN spec`), deleted by their spec. */
  delete: string[]
  /** Rules inserted after the deletions, each at its 1-based position in the desired chain, in ascending order. */
  insert: {position: number; rule: string}[]
}

export interface TableChanges {
  /** Owned chains to declare (which empties them) and refill; new or with different rules. */
  writeChains: ChainState[]
  /** Address chains where a few rules differ: edited rule by rule (chainEdit). */
  editChains: ChainEdit[]
  /** Owned chains no longer desired: emptied, then deleted once nothing jumps to them. */
  deleteChains: string[]
  /** Jump rules (`-A BUILTIN ...`) missing from their built-in chain. */
  insertJumps: string[]
  /** Jump rules (`-A BUILTIN ...`) to delete once each: stale ones and surplus copies. */
  deleteJumps: string[]
}

/** Entries to add to and delete from a live set, in place. */
export interface SetUpdate {
  /** The desired set. */
  set: IpsetState
  add: string[]
  del: string[]
  /** Delete before adding: adding first would push the set past its maxelem for a moment. */
  deleteFirst: boolean
}

export interface SetChanges {
  /** Sets that do not exist yet. */
  create: IpsetState[]
  /** Sets whose options differ, or whose entries differ a lot: refilled under the temporary name and swapped in. */
  replace: IpsetState[]
  /** Sets where only a few entries differ: those are added and deleted in place (one Mapping changing in a set of 40,000 entries). */
  update: SetUpdate[]
  /** Owned sets no longer desired (leftover temporary sets included). */
  destroy: string[]
  /** Sets that exist with another type; ipset cannot swap those, so apply refuses them. */
  retype: {name: string; actual: string; desired: string}[]
}

export interface IptablesChanges {
  tables: Record<TableName, TableChanges>
  sets: SetChanges
  routing: RoutingChanges
}

export interface DiffOptions {
  /** Rewrite every desired chain and set even when it already matches (after a failed apply). */
  full?: boolean
}

/** Options that say what a set is; the kernel grows `hashsize` on its own and picks `bucketsize`/`initval`. */
export function setOptionsKey(options: string): string {
  const words = options.split(' ').filter((w) => w !== '')
  const kept: string[] = []
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!
    if (word === 'hashsize' || word === 'bucketsize' || word === 'initval') i++
    else kept.push(word)
  }
  return kept.join(' ')
}

/** ipset's default when a set is created without maxelem. */
const DEFAULT_MAXELEM = 65536

function maxelemOf(options: string): number {
  const words = options.split(' ')
  const at = words.indexOf('maxelem')
  const value = at === -1 ? NaN : Number(words[at + 1])
  return Number.isInteger(value) && value > 0 ? value : DEFAULT_MAXELEM
}

/** Whether entries are sorted as IpsetState keeps them, without repeats. */
export function strictlyAscending(entries: readonly string[]): boolean {
  for (let i = 1; i < entries.length; i++) if (!(entries[i - 1]! < entries[i]!)) return false
  return true
}

/** Entries a set gains and loses. */
export interface EntryDelta {
  add: string[]
  del: string[]
}

/**
 * Entries only `desired` has and entries only `actual` has, each in the order given. Both sides are
 * normally sorted without repeats, and one merge walk then finds the difference without building
 * anything; otherwise hashing keeps it linear.
 */
export function entryDelta(desired: readonly string[], actual: readonly string[]): EntryDelta {
  if (desired === actual) return {add: [], del: []}
  if (!strictlyAscending(desired) || !strictlyAscending(actual)) {
    const wanted = new Set(desired)
    const present = new Set(actual)
    return {add: [...wanted].filter((e) => !present.has(e)), del: [...present].filter((e) => !wanted.has(e))}
  }
  const add: string[] = []
  const del: string[] = []
  let i = 0
  let j = 0
  while (i < desired.length && j < actual.length) {
    const want = desired[i]!
    const have = actual[j]!
    if (want === have) {
      i++
      j++
    } else if (want < have) {
      add.push(want)
      i++
    } else {
      del.push(have)
      j++
    }
  }
  for (; i < desired.length; i++) add.push(desired[i]!)
  for (; j < actual.length; j++) del.push(actual[j]!)
  return {add, del}
}

/** Whether two chains hold the same rule lines in the same order. */
export function sameRules(a: readonly string[], b: readonly string[]): boolean {
  return a === b || (a.length === b.length && a.every((rule, i) => rule === b[i]))
}

/**
 * How a rendered state was derived from `base`, the state rendered before it (renderer.ts): every
 * nat chain outside `nat` is the same object on both sides, and the big sets named in `sets` differ
 * by exactly those entries. A diff against `base` then looks at nothing else.
 */
export interface StateDerivation {
  base: IptablesState
  /** The nat chains that may differ, each side in its state's order. */
  nat: {desired: ChainState[]; actual: ChainState[]}
  sets: ReadonlyMap<string, EntryDelta>
}

const derivations = new WeakMap<IptablesState, StateDerivation>()

/**
 * Records how `state` was derived, for diffs against its base. The base's own record goes: kept, it
 * would hold every state rendered before it.
 */
export function rememberDerivation(state: IptablesState, derivation: StateDerivation): void {
  derivations.delete(derivation.base)
  derivations.set(state, derivation)
}

/**
 * The nat tables to look through for what changed between `desired` and `actual`: when `desired` was
 * derived from `actual`, only the chains that may differ, else both whole.
 */
export function natTablesToCompare(desired: IptablesState, actual: IptablesState): {desired: TableState; actual: TableState} {
  const derivation = derivations.get(desired)
  if (derivation?.base !== actual) return {desired: desired.tables.nat, actual: actual.tables.nat}
  return {desired: {chains: derivation.nat.desired, jumps: []}, actual: {chains: derivation.nat.actual, jumps: []}}
}

/** At most this many rules deleted and inserted edit an address chain in place; more rewrite it. */
const MAX_EDITS = 8

/**
 * The rules to delete from `actual` and insert into it to make it `desired`, for an address chain
 * whose rules are all distinct (one per endpoint) when a few edits leave the others in order; else
 * undefined. Why: declaring the chain again makes iptables-restore parse and add back every rule
 * (200 at 10,000 Mappings on 100 addresses), and any rule added makes iptables-nft's commit check the
 * whole nat table; a Mapping's rule deleted alone costs half of that, one inserted a little less.
 */
export function chainEdit(desired: ChainState, actual: ChainState): ChainEdit | undefined {
  if (!desired.name.startsWith(ADDRESS_CHAIN_PREFIX)) return undefined
  const wanted = new Set(desired.rules)
  const present = new Set(actual.rules)
  if (wanted.size !== desired.rules.length || present.size !== actual.rules.length) return undefined
  const remove = actual.rules.filter((rule) => !wanted.has(rule))
  const insert: ChainEdit['insert'] = []
  desired.rules.forEach((rule, i) => {
    if (!present.has(rule)) insert.push({position: i + 1, rule})
  })
  if (remove.length + insert.length > MAX_EDITS) return undefined
  // Deletions and insertions cannot reorder the rules both sides keep.
  if (!sameRules(actual.rules.filter((rule) => wanted.has(rule)), desired.rules.filter((rule) => present.has(rule)))) return undefined
  return {name: desired.name, delete: remove, insert}
}

/** Chains of `desired` to write or edit and of `actual` to delete; `chains` narrows both to those that may differ. */
function diffTable(desired: TableState, actual: TableState, full: boolean, chains = {desired: desired.chains, actual: actual.chains}): TableChanges {
  const actualChains = new Map(chains.actual.map((c) => [c.name, c]))
  const desiredNames = new Set(chains.desired.map((c) => c.name))
  const writeChains: ChainState[] = []
  const editChains: ChainEdit[] = []
  for (const chain of chains.desired) {
    const current = actualChains.get(chain.name)
    if (!full && current && sameRules(current.rules, chain.rules)) continue
    const edit = !full && current ? chainEdit(chain, current) : undefined
    if (edit) editChains.push(edit)
    else writeChains.push(chain)
  }
  const deleteChains = chains.actual.map((c) => c.name).filter((name) => !desiredNames.has(name))

  const actualCounts = new Map<string, number>()
  for (const jump of actual.jumps) actualCounts.set(jump, (actualCounts.get(jump) ?? 0) + 1)
  const insertJumps: string[] = []
  const deleteJumps: string[] = []
  for (const jump of new Set(desired.jumps)) {
    const count = actualCounts.get(jump) ?? 0
    if (count === 0) insertJumps.push(jump)
    for (let i = 1; i < count; i++) deleteJumps.push(jump)
    actualCounts.delete(jump)
  }
  for (const [jump, count] of actualCounts) for (let i = 0; i < count; i++) deleteJumps.push(jump)
  return {writeChains, editChains, deleteChains, insertJumps, deleteJumps}
}

/** Set changes; `deltas` gives the entry changes of sets known to differ by exactly those. */
function diffSets(desired: readonly IpsetState[], actual: readonly IpsetState[], full: boolean, deltas?: ReadonlyMap<string, EntryDelta>): SetChanges {
  const actualSets = new Map(actual.map((s) => [s.name, s]))
  const desiredNames = new Set(desired.map((s) => s.name))
  const changes: SetChanges = {create: [], replace: [], update: [], destroy: [], retype: []}
  for (const set of desired) {
    const current = actualSets.get(set.name)
    if (set === current && !full) continue
    if (!current) changes.create.push(set)
    else if (current.type !== set.type) changes.retype.push({name: set.name, actual: current.type, desired: set.type})
    else if (full || setOptionsKey(current.options) !== setOptionsKey(set.options)) changes.replace.push(set)
    else {
      const {add, del} = deltas?.get(set.name) ?? entryDelta(set.entries, current.entries)
      const changed = add.length + del.length
      if (changed === 0) continue
      // Refilling costs one line per entry and is atomic; in place costs one line per changed
      // entry, and readers may see it half done. In place only pays when the change is small.
      if (2 * changed > set.entries.length) changes.replace.push(set)
      else changes.update.push({set, add, del, deleteFirst: current.entries.length + add.length > maxelemOf(current.options)})
    }
  }
  changes.destroy = actual.map((s) => s.name).filter((name) => !desiredNames.has(name))
  return changes
}

/** The writes that make `actual` equal `desired`, touching only what differs. */
export function diffIptablesState(desired: IptablesState, actual: IptablesState, options: DiffOptions = {}): IptablesChanges {
  const full = options.full ?? false
  const derivation = derivations.get(desired)
  const derived = derivation?.base === actual && !full ? derivation : undefined
  const tables = Object.fromEntries(
    TABLES.map((t) => [t, diffTable(desired.tables[t], actual.tables[t], full, t === 'nat' ? derived?.nat : undefined)]),
  ) as Record<TableName, TableChanges>
  return {tables, sets: diffSets(desired.sets, actual.sets, full, derived?.sets), routing: diffRouting(desired, actual)}
}

/** Whether a set of changes writes nothing. */
export function isEmptyChanges(changes: IptablesChanges): boolean {
  const {sets, routing} = changes
  return (
    TABLES.every((t) => {
      const c = changes.tables[t]
      return c.writeChains.length + c.editChains.length + c.deleteChains.length + c.insertJumps.length + c.deleteJumps.length === 0
    }) &&
    sets.create.length + sets.replace.length + sets.update.length + sets.destroy.length + sets.retype.length === 0 &&
    isEmptyRouting(routing)
  )
}
