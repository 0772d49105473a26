/**
 * Compares desired and actual nftables-backend state: nothing, element changes only, element changes
 * plus sets added or removed and chains refilled (mode direct's group and member chains and affinity
 * sets one by one, the allow-list set of a new prefix length and the rule that looks it up), or the
 * whole table; pure.
 */
import {diffRouting, isEmptyRouting, type RoutingChanges} from '../../routing/diff.js'
import type {ChangedEndpoint} from '../result.js'
import {ENDPOINTS_MAP, isAffinitySet, isDirectChain} from './names.js'
import {chainLines, elementKey, elementParts, setDeclaration, type ElementTypes} from './syntax.js'
import type {NftChain, NftElement, NftRule, NftSet, NftState, NftTable} from './types.js'

/** Element writes for one set or map: deletes run before adds, so a changed element is replaced. */
export interface ElementChanges {
  set: NftSet
  delete: NftElement[]
  add: NftElement[]
}

/**
 * Sets and chains that differ, around element changes. An endpoint change of one group in mode
 * direct rewrites that group's chain and adds or deletes its members' chains and affinity sets; an
 * affinity set that stays keeps what the kernel put into it. The first Mapping whose allowed sources
 * have a prefix length no other has adds that length's allow-list set and refills the chain that
 * looks the sets up; the last one removes them.
 */
export interface DirectChanges {
  /** Sets to create (their elements, but for affinity sets, come as element changes). */
  addSets: NftSet[]
  /** Sets no rule uses any more. */
  deleteSets: NftSet[]
  /** Group and member chains to create, with their rules. */
  addChains: NftChain[]
  /** Chains whose rules differ, the header the same: flushed and filled again. */
  refillChains: NftChain[]
  /** Group and member chains nothing leads to any more. */
  deleteChains: NftChain[]
}

export type TableChange =
  | {kind: 'none'}
  /** Same sets and chains, only elements differ: `delete element` / `add element` in one transaction. */
  | {kind: 'elements'; sets: ElementChanges[]}
  /** Element changes plus sets added or deleted and chains added, refilled or deleted, in one transaction; every set and chain that stays is declared the same. */
  | ({kind: 'partial'; sets: ElementChanges[]} & DirectChanges)
  /** Anything else differs (or a full apply was asked for): the table is replaced whole. */
  | {kind: 'replace'}
  /** The table exists and is not wanted (flush). */
  | {kind: 'delete'}

export interface NftChanges {
  table: TableChange
  routing: RoutingChanges
}

export interface DiffOptions {
  /** Replace the table even when it already matches (after a failed apply). */
  full?: boolean
}

/**
 * Sets without elements and chains with their rules, one text, leaving out mode direct's group and
 * member chains and affinity sets (compared one by one): equal exactly when nothing else but elements differs.
 */
export function tableStructure(table: NftTable): string {
  return structureOf(splitTable(table))
}

/** A table's sets and chains: mode direct's (compared one by one) apart from the rest. */
interface SplitTable {
  sets: NftSet[]
  chains: NftChain[]
  affinitySets: Map<string, NftSet>
  directChains: Map<string, NftChain>
}

function splitTable(table: NftTable): SplitTable {
  const split: SplitTable = {sets: [], chains: [], affinitySets: new Map(), directChains: new Map()}
  for (const set of table.sets) {
    if (isAffinitySet(set.name)) split.affinitySets.set(set.name, set)
    else split.sets.push(set)
  }
  for (const chain of table.chains) {
    if (isDirectChain(chain.name)) split.directChains.set(chain.name, chain)
    else split.chains.push(chain)
  }
  return split
}

function structureOf({sets, chains}: SplitTable): string {
  const declarations = sets.map(setDeclaration).sort()
  const lines = [...chains].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).flatMap(chainLines)
  return [...declarations, ...lines].join('\n')
}

function byName<T extends {name: string}>(items: readonly T[]): Map<string, T> {
  return new Map(items.map((item) => [item.name, item]))
}

/**
 * The sets (other than affinity sets) added and deleted and the chains (other than group and member
 * chains) refilled; undefined when none; 'replace' when a set that stays is declared otherwise or
 * the chains' names or headers differ (nft cannot change those in place).
 */
function diffStructure(desired: SplitTable, actual: SplitTable): Pick<DirectChanges, 'addSets' | 'deleteSets' | 'refillChains'> | 'replace' | undefined {
  if (structureOf(desired) === structureOf(actual)) return undefined
  const changes: Pick<DirectChanges, 'addSets' | 'deleteSets' | 'refillChains'> = {addSets: [], deleteSets: [], refillChains: []}
  const haveSets = byName(actual.sets)
  for (const set of desired.sets) {
    const have = haveSets.get(set.name)
    if (!have) changes.addSets.push(set)
    else if (setDeclaration(have) !== setDeclaration(set)) return 'replace'
  }
  const wantSets = byName(desired.sets)
  changes.deleteSets = actual.sets.filter((set) => !wantSets.has(set.name))
  const haveChains = byName(actual.chains)
  if (haveChains.size !== desired.chains.length) return 'replace'
  for (const chain of desired.chains) {
    const have = haveChains.get(chain.name)
    if (!have) return 'replace'
    const [header, ...rules] = chainLines(chain)
    const [haveHeader, ...haveRules] = chainLines(have)
    if (header !== haveHeader) return 'replace'
    if (rules.join('\n') !== haveRules.join('\n')) changes.refillChains.push(chain)
  }
  return changes
}

/** Deep equality of plain data (rules are small trees of strings, numbers and arrays): no printing of tens of thousands of rules. */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false
    return true
  }
  const left = a as Record<string, unknown>
  const right = b as Record<string, unknown>
  let keys = 0
  for (const key in left) {
    keys++
    if (!sameData(left[key], right[key])) return false
  }
  return keys === Object.keys(right).length
}

function sameRules(a: NftRule[], b: NftRule[]): boolean {
  return a.length === b.length && a.every((rule, i) => sameData(rule, b[i]))
}

/** The group and member chains and affinity sets that differ; undefined when none does, 'replace' when an affinity set was redeclared by hand. */
function diffDirect(desired: SplitTable, actual: SplitTable): DirectChanges | 'replace' | undefined {
  const changes: DirectChanges = {addSets: [], deleteSets: [], addChains: [], refillChains: [], deleteChains: []}
  for (const [name, chain] of desired.directChains) {
    const have = actual.directChains.get(name)
    if (!have) changes.addChains.push(chain)
    else if (!sameRules(chain.rules, have.rules)) changes.refillChains.push(chain)
  }
  for (const [name, chain] of actual.directChains) if (!desired.directChains.has(name)) changes.deleteChains.push(chain)
  for (const [name, set] of desired.affinitySets) {
    const have = actual.affinitySets.get(name)
    if (!have) changes.addSets.push(set)
    // Its name holds its timeout, so only a hand-made change redeclares it; nft cannot change a set's type in place.
    else if (setDeclaration(have) !== setDeclaration(set)) return 'replace'
  }
  for (const [name, set] of actual.affinitySets) if (!desired.affinitySets.has(name)) changes.deleteSets.push(set)
  return Object.values(changes).some((list) => list.length > 0) ? changes : undefined
}

function diffElements(desired: NftSet, actual: NftSet): ElementChanges | undefined {
  const {delete: stale, add} = elementDelta(desired, desired.elements, actual, actual.elements)
  return stale.length + add.length === 0 ? undefined : {set: desired, delete: stale, add}
}

/** Elements to delete from a set and to add to it. */
export type ElementDelta = Omit<ElementChanges, 'set'>

/** The element changes from `have` (elements of `actual`) to `want` (elements of `desired`), both sorted by key. */
export function elementDelta(desired: NftSet, want: readonly NftElement[], actual: NftSet, have: readonly NftElement[]): ElementDelta {
  if (want === have) return {delete: [], add: []}
  // Both sides are sorted by key, so a change of a few elements leaves long equal runs at both
  // ends; only the window between them is compared by key.
  let start = 0
  while (start < want.length && start < have.length && want[start] === have[start]) start++
  let wantEnd = want.length
  let haveEnd = have.length
  while (wantEnd > start && haveEnd > start && want[wantEnd - 1] === have[haveEnd - 1]) {
    wantEnd--
    haveEnd--
  }
  const changes: ElementDelta = {delete: [], add: []}
  if (start === wantEnd && start === haveEnd) return changes
  const byKey = (set: NftSet, elements: readonly NftElement[]) => new Map(elements.map((element) => [elementKey(set, element), element]))
  const wanted = byKey(desired, want.slice(start, wantEnd))
  const present = byKey(actual, have.slice(start, haveEnd))
  for (const [key, element] of present) if (wanted.get(key) !== element) changes.delete.push(element)
  for (const [key, element] of wanted) if (present.get(key) !== element) changes.add.push(element)
  return changes
}

/**
 * How a rendered state was derived from `base`, the state rendered before it (renderer.ts): the
 * sets named in `sets` differ from base's by exactly those elements, and every other set that is
 * not the same object is compared element by element.
 */
export interface StateDerivation {
  base: NftState
  sets: ReadonlyMap<string, ElementDelta>
}

const derivations = new WeakMap<NftState, StateDerivation>()

/**
 * Records how `state` was derived, for diffs against its base. The base's own record goes: kept, it
 * would hold every state rendered before it.
 */
export function rememberDerivation(state: NftState, derivation: StateDerivation): void {
  derivations.delete(derivation.base)
  derivations.set(state, derivation)
}

/** Element changes of every set; `deltas` gives those of sets known to differ by exactly that. */
function diffSets(want: NftSet[], have: NftSet[], deltas: ReadonlyMap<string, ElementDelta> | undefined): ElementChanges[] {
  const actualSets = byName(have)
  return want.flatMap((set) => {
    const actual = actualSets.get(set.name)
    // A set the table does not have yet is declared empty (DirectChanges.addSets) and filled here.
    if (!actual) {
      // Read once: a daemon's set makes its elements each time they are read (syntax.ts, setMadeOnRead).
      const {elements} = set
      return elements.length === 0 ? [] : [{set, delete: [], add: elements}]
    }
    if (set === actual) return []
    const delta = deltas?.get(set.name)
    if (delta === undefined) return diffElements(set, actual) ?? []
    return delta.delete.length + delta.add.length === 0 ? [] : [{set, ...delta}]
  })
}

function diffTable(desired: NftTable | undefined, actual: NftTable | undefined, full: boolean, deltas?: ReadonlyMap<string, ElementDelta>): TableChange {
  if (!desired) return actual ? {kind: 'delete'} : {kind: 'none'}
  if (!actual || full) return {kind: 'replace'}
  if (desired === actual) return {kind: 'none'}
  const want = splitTable(desired)
  const have = splitTable(actual)
  const structure = diffStructure(want, have)
  if (structure === 'replace') return {kind: 'replace'}
  const direct = diffDirect(want, have)
  if (direct === 'replace') return {kind: 'replace'}
  const sets = diffSets(want.sets, have.sets, deltas)
  if (direct || structure) {
    const none: DirectChanges = {addSets: [], deleteSets: [], addChains: [], refillChains: [], deleteChains: []}
    const ofDirect = direct ?? none
    const ofStructure = structure ?? none
    return {
      kind: 'partial',
      sets,
      addSets: [...ofStructure.addSets, ...ofDirect.addSets],
      deleteSets: [...ofStructure.deleteSets, ...ofDirect.deleteSets],
      addChains: ofDirect.addChains,
      refillChains: [...ofStructure.refillChains, ...ofDirect.refillChains],
      deleteChains: ofDirect.deleteChains,
    }
  }
  return sets.length === 0 ? {kind: 'none'} : {kind: 'elements', sets}
}

/** The writes that make `actual` equal `desired`. */
export function diffNftState(desired: NftState, actual: NftState, options: DiffOptions = {}): NftChanges {
  const derivation = derivations.get(desired)
  const deltas = derivation?.base === actual ? derivation.sets : undefined
  return {table: diffTable(desired.table, actual.table, options.full ?? false, deltas), routing: diffRouting(desired, actual)}
}

export function isEmptyChanges(changes: NftChanges): boolean {
  return changes.table.kind === 'none' && isEmptyRouting(changes.routing)
}

/** Elements of the endpoints map, with the types they are printed with. */
interface EndpointElements {
  types: ElementTypes
  elements: readonly NftElement[]
}

function endpointOf(types: ElementTypes, element: NftElement): ChangedEndpoint | undefined {
  const {key, value} = elementParts(types, element)
  const [address, protocol, port] = key
  if (!address || (protocol !== 'tcp' && protocol !== 'udp') || value?.length !== 2) return undefined
  return {address, protocol, port: Number(port), oldTarget: value.join(':')}
}

/** DNAT targets of endpoints-map elements, by `address protocol/port`. */
function dnatTargets({types, elements}: EndpointElements): Map<string, ChangedEndpoint> {
  const endpoints = new Map<string, ChangedEndpoint>()
  for (const element of elements) {
    const endpoint = endpointOf(types, element)
    if (endpoint) endpoints.set(`${endpoint.address} ${endpoint.protocol}/${endpoint.port}`, endpoint)
  }
  return endpoints
}

function endpointsMap(table: NftTable | undefined): EndpointElements {
  const set = table?.sets.find((s) => s.name === ENDPOINTS_MAP)
  return {types: set ?? {keyType: []}, elements: set?.elements ?? []}
}

/**
 * Endpoints whose DNAT target is gone or different in `desired`, with the target `actual` had.
 * An element change touches only the elements it deletes (their old targets) and adds (the new ones).
 */
export function changedEndpoints(desired: NftState, actual: NftState, change: TableChange): ChangedEndpoint[] {
  let before: EndpointElements
  let after: EndpointElements
  switch (change.kind) {
    case 'none':
      return []
    case 'elements':
    case 'partial': {
      // A map that stays is declared alike on both sides.
      const endpoints = change.sets.find((c) => c.set.name === ENDPOINTS_MAP)
      const types = endpoints?.set ?? {keyType: []}
      before = {types, elements: endpoints?.delete ?? []}
      after = {types, elements: endpoints?.add ?? []}
      break
    }
    case 'replace':
    case 'delete':
      before = endpointsMap(actual.table)
      after = endpointsMap(desired.table)
  }
  const wanted = dnatTargets(after)
  return [...dnatTargets(before)]
    .filter(([key, endpoint]) => wanted.get(key)?.oldTarget !== endpoint.oldTarget)
    .map(([, endpoint]) => endpoint)
}
