/**
 * Compares desired and actual nftables-backend state: nothing, element changes only, element changes
 * plus mode direct's group and member chains and affinity sets one by one, or the whole table; pure.
 */
import {diffRouting, isEmptyRouting, type RoutingChanges} from '../../routing/diff.js'
import type {ChangedEndpoint} from '../result.js'
import {ENDPOINTS_MAP, isAffinitySet, isDirectChain} from './names.js'
import {chainLines, elementKey, printElement, setDeclaration} from './syntax.js'
import type {NftChain, NftElement, NftRule, NftSet, NftState, NftTable} from './types.js'

/** Element writes for one set or map: deletes run before adds, so a changed element is replaced. */
export interface ElementChanges {
  set: NftSet
  delete: NftElement[]
  add: NftElement[]
}

/**
 * Mode direct's chains and sets that differ, around element changes. An endpoint change of one group
 * rewrites that group's chain and adds or deletes its members' chains and affinity sets; an affinity
 * set that stays keeps what the kernel put into it.
 */
export interface DirectChanges {
  /** Affinity sets to create. */
  addSets: NftSet[]
  /** Affinity sets no rule uses any more. */
  deleteSets: NftSet[]
  /** Group and member chains to create, with their rules. */
  addChains: NftChain[]
  /** Group and member chains whose rules differ: flushed and filled again. */
  refillChains: NftChain[]
  /** Group and member chains nothing leads to any more. */
  deleteChains: NftChain[]
}

export type TableChange =
  | {kind: 'none'}
  /** Same sets and chains, only elements differ: `delete element` / `add element` in one transaction. */
  | {kind: 'elements'; sets: ElementChanges[]}
  /** Element changes plus group and member chains and affinity sets, in one transaction; everything else the same. */
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
  const sets = table.sets.filter((set) => !isAffinitySet(set.name)).map(setDeclaration).sort()
  const chains = table.chains
    .filter((chain) => !isDirectChain(chain.name))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
    .flatMap(chainLines)
  return [...sets, ...chains].join('\n')
}

/** Deep equality of plain data (rules are small trees of strings, numbers and arrays): no printing of tens of thousands of rules. */
function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || Array.isArray(a) !== Array.isArray(b)) return false
  const aKeys = Object.keys(a)
  if (aKeys.length !== Object.keys(b).length) return false
  return aKeys.every((key) => sameData((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]))
}

function sameRules(a: NftRule[], b: NftRule[]): boolean {
  return a.length === b.length && a.every((rule, i) => sameData(rule, b[i]))
}

/** The group and member chains and affinity sets that differ; undefined when none does, 'replace' when an affinity set was redeclared by hand. */
function diffDirect(desired: NftTable, actual: NftTable): DirectChanges | 'replace' | undefined {
  const changes: DirectChanges = {addSets: [], deleteSets: [], addChains: [], refillChains: [], deleteChains: []}
  const haveChains = new Map(actual.chains.filter((c) => isDirectChain(c.name)).map((c) => [c.name, c]))
  for (const chain of desired.chains) {
    if (!isDirectChain(chain.name)) continue
    const have = haveChains.get(chain.name)
    haveChains.delete(chain.name)
    if (!have) changes.addChains.push(chain)
    else if (!sameRules(chain.rules, have.rules)) changes.refillChains.push(chain)
  }
  changes.deleteChains = [...haveChains.values()]
  const haveSets = new Map(actual.sets.filter((s) => isAffinitySet(s.name)).map((s) => [s.name, s]))
  for (const set of desired.sets) {
    if (!isAffinitySet(set.name)) continue
    const have = haveSets.get(set.name)
    haveSets.delete(set.name)
    if (!have) changes.addSets.push(set)
    // Its name holds its timeout, so only a hand-made change redeclares it; nft cannot change a set's type in place.
    else if (setDeclaration(have) !== setDeclaration(set)) return 'replace'
  }
  changes.deleteSets = [...haveSets.values()]
  return Object.values(changes).some((list) => list.length > 0) ? changes : undefined
}

function sameParts(a: readonly string[] | undefined, b: readonly string[] | undefined): boolean {
  if (a === b) return true
  if (!a || !b || a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function sameElement(a: NftElement, b: NftElement): boolean {
  return a.comment === b.comment && sameParts(a.key, b.key) && sameParts(a.value, b.value)
}

function diffElements(desired: NftSet, actual: NftSet): ElementChanges | undefined {
  // Both sides are sorted by key, so a change of a few elements leaves long equal runs at both
  // ends; only the window between them is printed and compared by key.
  const want = desired.elements
  const have = actual.elements
  let start = 0
  while (start < want.length && start < have.length && sameElement(want[start]!, have[start]!)) start++
  let wantEnd = want.length
  let haveEnd = have.length
  while (wantEnd > start && haveEnd > start && sameElement(want[wantEnd - 1]!, have[haveEnd - 1]!)) {
    wantEnd--
    haveEnd--
  }
  if (start === wantEnd && start === haveEnd) return undefined
  const printed = (set: NftSet, elements: NftElement[]) =>
    new Map(elements.map((element) => [elementKey(set, element), {element, text: printElement(set, element)}]))
  const wanted = printed(desired, want.slice(start, wantEnd))
  const present = printed(actual, have.slice(start, haveEnd))
  const changes: ElementChanges = {set: desired, delete: [], add: []}
  for (const [key, {element, text}] of present) if (wanted.get(key)?.text !== text) changes.delete.push(element)
  for (const [key, {element, text}] of wanted) if (present.get(key)?.text !== text) changes.add.push(element)
  return changes.delete.length + changes.add.length === 0 ? undefined : changes
}

function diffTable(desired: NftTable | undefined, actual: NftTable | undefined, full: boolean): TableChange {
  if (!desired) return actual ? {kind: 'delete'} : {kind: 'none'}
  if (!actual || full || tableStructure(desired) !== tableStructure(actual)) return {kind: 'replace'}
  const direct = diffDirect(desired, actual)
  if (direct === 'replace') return {kind: 'replace'}
  const actualSets = new Map(actual.sets.map((s) => [s.name, s]))
  const sets = desired.sets.flatMap((set) => (isAffinitySet(set.name) ? [] : (diffElements(set, actualSets.get(set.name)!) ?? [])))
  if (direct) return {kind: 'partial', sets, ...direct}
  return sets.length === 0 ? {kind: 'none'} : {kind: 'elements', sets}
}

/** The writes that make `actual` equal `desired`. */
export function diffNftState(desired: NftState, actual: NftState, options: DiffOptions = {}): NftChanges {
  return {table: diffTable(desired.table, actual.table, options.full ?? false), routing: diffRouting(desired, actual)}
}

export function isEmptyChanges(changes: NftChanges): boolean {
  return changes.table.kind === 'none' && isEmptyRouting(changes.routing)
}

function endpointOf({key, value}: NftElement): ChangedEndpoint | undefined {
  const [address, protocol, port] = key
  if (!address || (protocol !== 'tcp' && protocol !== 'udp') || value?.length !== 2) return undefined
  return {address, protocol, port: Number(port), oldTarget: value.join(':')}
}

/** DNAT targets of endpoints-map elements, by `address protocol/port`. */
function dnatTargets(elements: readonly NftElement[]): Map<string, ChangedEndpoint> {
  const endpoints = new Map<string, ChangedEndpoint>()
  for (const element of elements) {
    const endpoint = endpointOf(element)
    if (endpoint) endpoints.set(`${endpoint.address} ${endpoint.protocol}/${endpoint.port}`, endpoint)
  }
  return endpoints
}

function endpointsMap(table: NftTable | undefined): NftElement[] {
  return table?.sets.find((s) => s.name === ENDPOINTS_MAP)?.elements ?? []
}

/**
 * Endpoints whose DNAT target is gone or different in `desired`, with the target `actual` had.
 * An element change touches only the elements it deletes (their old targets) and adds (the new ones).
 */
export function changedEndpoints(desired: NftState, actual: NftState, change: TableChange): ChangedEndpoint[] {
  let before: NftElement[]
  let after: NftElement[]
  switch (change.kind) {
    case 'none':
      return []
    case 'elements':
    case 'partial': {
      const endpoints = change.sets.find((c) => c.set.name === ENDPOINTS_MAP)
      before = endpoints?.delete ?? []
      after = endpoints?.add ?? []
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
