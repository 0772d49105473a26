/** Compares desired and actual nftables-backend state: nothing, element changes only, or the whole table; pure. */
import type {ChangedEndpoint} from '../result.js'
import {ENDPOINTS_MAP} from './names.js'
import {diffRouting, isEmptyRouting, type RoutingChanges} from './routing.js'
import {chainLines, elementKey, printElement, setDeclaration} from './syntax.js'
import type {NftElement, NftSet, NftState, NftTable} from './types.js'

/** Element writes for one set or map: deletes run before adds, so a changed element is replaced. */
export interface ElementChanges {
  set: NftSet
  delete: NftElement[]
  add: NftElement[]
}

export type TableChange =
  | {kind: 'none'}
  /** Same sets and chains, only elements differ: `delete element` / `add element` in one transaction. */
  | {kind: 'elements'; sets: ElementChanges[]}
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

/** Sets without elements and chains with their rules, one text: equal exactly when only elements may differ. */
export function tableStructure(table: NftTable): string {
  const sets = table.sets.map(setDeclaration).sort()
  const chains = [...table.chains].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)).flatMap(chainLines)
  return [...sets, ...chains].join('\n')
}

function diffElements(desired: NftSet, actual: NftSet): ElementChanges | undefined {
  // Each element is printed once per side: with tens of thousands of elements this is the diff's cost.
  const printed = (set: NftSet) => new Map(set.elements.map((element) => [elementKey(set, element), {element, text: printElement(set, element)}]))
  const have = printed(actual)
  const want = printed(desired)
  const changes: ElementChanges = {set: desired, delete: [], add: []}
  for (const [key, {element, text}] of have) if (want.get(key)?.text !== text) changes.delete.push(element)
  for (const [key, {element, text}] of want) if (have.get(key)?.text !== text) changes.add.push(element)
  return changes.delete.length + changes.add.length === 0 ? undefined : changes
}

function diffTable(desired: NftTable | undefined, actual: NftTable | undefined, full: boolean): TableChange {
  if (!desired) return actual ? {kind: 'delete'} : {kind: 'none'}
  if (!actual || full || tableStructure(desired) !== tableStructure(actual)) return {kind: 'replace'}
  const actualSets = new Map(actual.sets.map((s) => [s.name, s]))
  const sets = desired.sets.flatMap((set) => diffElements(set, actualSets.get(set.name)!) ?? [])
  return sets.length === 0 ? {kind: 'none'} : {kind: 'elements', sets}
}

/** The writes that make `actual` equal `desired`. */
export function diffNftState(desired: NftState, actual: NftState, options: DiffOptions = {}): NftChanges {
  return {table: diffTable(desired.table, actual.table, options.full ?? false), routing: diffRouting(desired, actual)}
}

export function isEmptyChanges(changes: NftChanges): boolean {
  return changes.table.kind === 'none' && isEmptyRouting(changes.routing)
}

/** Every DNAT target of the endpoints map, by `address protocol/port`. */
function dnatTargets(table: NftTable | undefined): Map<string, ChangedEndpoint> {
  const endpoints = new Map<string, ChangedEndpoint>()
  const map = table?.sets.find((s) => s.name === ENDPOINTS_MAP)
  for (const {key, value} of map?.elements ?? []) {
    const [address, protocol, port] = key
    if (!address || (protocol !== 'tcp' && protocol !== 'udp') || value?.length !== 2) continue
    endpoints.set(`${address} ${protocol}/${port}`, {address, protocol, port: Number(port), oldTarget: value.join(':')})
  }
  return endpoints
}

/** Endpoints whose DNAT target is gone or different in `desired`, with the target `actual` had. */
export function changedEndpoints(desired: NftState, actual: NftState): ChangedEndpoint[] {
  const wanted = dnatTargets(desired.table)
  return [...dnatTargets(actual.table)]
    .filter(([key, endpoint]) => wanted.get(key)?.oldTarget !== endpoint.oldTarget)
    .map(([, endpoint]) => endpoint)
}
