/**
 * The nftables backend's table cut along what changes together: one Mapping's elements (a
 * MappingShare, rendered once per NatMapping object) and one external address's elements (an
 * AddressPart, from the shares of the Mappings on it). Every element of the endpoint maps and sets
 * is keyed `address . protocol . port ...`, so in the order of printed keys an address's elements
 * are contiguous, and the runs follow the order of `address `.
 */
import {fitted, fittedMap} from '../../net/fitted.js'
import {cidrParts, type Ipv4} from '../../net/ipv4.js'
import type {DirectEndpoint, NatMapping} from '../../plan/model.js'
import {ShareConflict} from '../address-buckets.js'
import {checkEndpoint, checkMappingName} from '../model-checks.js'
import {DIRECT_SET_TYPES, addDirectElements, affinityParts, collectGroups, type DirectElements, type OwnedDirectEndpoint} from './direct.js'
import {commentedMappings} from './mappings.js'
import {DIRECT_ENDPOINTS_SET, ENDPOINTS_MAP, allowedSetName} from './names.js'
import {ENDPOINT_TYPE, allowedElement, allowedKeyType, cut, disjointSources, endpointComment, endpointElement, type OwnedEndpoint} from './render.js'
import {sortElements} from './syntax.js'
import type {NftChain, NftElement, NftSet} from './types.js'

/**
 * One Mapping's ports and elements at one of its addresses, in one list: the number of ports, the
 * ports (protocol and port as one number, udp negative), then set by set its name, the number of its
 * elements and them. One list instead of an object holding a list of ports and a list per set with a
 * map of them (a Mapping's two ports and three sets of two: 424 bytes, then 216, 144 as one list).
 */
type AddressShare = readonly (string | number)[]

/** Everything one Mapping adds to the table, checked. */
export interface MappingShare {
  mapping: NatMapping
  byAddress: ReadonlyMap<Ipv4, AddressShare>
  /** Group ids and the names of its groups' chains and affinity sets: no other Mapping may take them. */
  names: string[]
  /** The largest group a pick chain serves, 0 for none. */
  largest: number
  /** Chains and sets of its groups with affinity. */
  affinity: {chains: NftChain[]; sets: NftSet[]}
  direct: boolean
}

/** Renders one Mapping's share; throws what the full render would (perhaps another of its errors first). */
export function mappingShare(mapping: NatMapping): MappingShare {
  checkMappingName(mapping, 'element comment')
  for (const e of mapping.endpoints) checkEndpoint(mapping, e)
  const sources = disjointSources(mapping.allowedSources)
  const allowComment = cut(`${mapping.namespace}/${mapping.name}`, '')
  const byAddress = new Map<Ipv4, {ports: number[]; elements: Map<string, NftElement[]>}>()
  const direct: OwnedDirectEndpoint[] = []
  const directElements = new Map<Ipv4, DirectElements>()
  let largest = 0
  for (const endpoint of mapping.endpoints) {
    const owned: OwnedEndpoint = {mapping, endpoint, sources}
    const e = endpoint
    let share = byAddress.get(e.address)
    if (!share) byAddress.set(e.address, (share = {ports: [], elements: new Map<string, NftElement[]>()}))
    share.ports.push(e.protocol === 'udp' ? -e.port : e.port)
    const {elements} = share
    const add = (set: string, element: NftElement) => {
      const list = elements.get(set)
      if (list) list.push(element)
      else elements.set(set, [element])
    }
    if (e.group === undefined) add(ENDPOINTS_MAP, endpointElement({...owned, endpoint: e}))
    else {
      const ownedDirect = {mapping, endpoint: e as DirectEndpoint, comment: endpointComment(owned)}
      direct.push(ownedDirect)
      let elements = directElements.get(e.address)
      if (!elements) directElements.set(e.address, (elements = {dispatch: [], keys: [], unserved: [], targets: []}))
      largest = Math.max(largest, addDirectElements(elements, ownedDirect))
    }
    for (const source of sources) {
      const {network, length} = cidrParts(source)
      add(allowedSetName(length), allowedElement(e, length, network, allowComment))
    }
  }
  for (const [address, elements] of directElements) {
    const share = byAddress.get(address)!
    for (const {name, of} of DIRECT_SET_TYPES) share.elements.set(name, elements[of])
  }
  // Kept from pass to pass for every Mapping: arrays without the room push leaves (an array of one
  // element grown by push holds 17), a map without room, and one empty list of names and one empty
  // affinity for the Mappings without any.
  const kept = new Map<Ipv4, AddressShare>()
  for (const [address, {ports, elements}] of byAddress) {
    const list: (string | number)[] = [ports.length, ...ports]
    for (const [set, members] of elements) list.push(set, members.length, ...members)
    kept.set(address, fitted(list))
  }
  const groups = collectGroups(direct)
  const affinity = affinityParts(groups.values())
  const names = [...[...groups.keys()].map((id) => `group ${id}`), ...affinity.chains.map((c) => c.name), ...affinity.sets.map((s) => s.name)]
  return {mapping, byAddress: fittedMap(kept), names: names.length === 0 ? NO_NAMES : names, largest, affinity: affinity.chains.length + affinity.sets.length === 0 ? NO_AFFINITY : affinity, direct: direct.length > 0}
}

const NO_AFFINITY: MappingShare['affinity'] = {chains: [], sets: []}
const NO_NAMES: string[] = []

/** One external address: its runs of elements by set name, each sorted by printed key. */
export interface AddressPart {
  address: Ipv4
  shares: MappingShare[]
  runs: Map<string, NftElement[]>
  largest: number
  direct: boolean
  /** The Mappings the comments of its endpoint map and direct endpoint set elements name. */
  mappings: string[]
}

/** The key types of each set an address's elements go to. */
const KEY_TYPES = new Map<string, string[]>([[ENDPOINTS_MAP, ENDPOINT_TYPE], ...DIRECT_SET_TYPES.map(({name, keyType}) => [name, keyType] as [string, string[]])])
for (let length = 0; length <= 32; length++) KEY_TYPES.set(allowedSetName(length), allowedKeyType(length))

/**
 * Assembles one address from the shares of the Mappings on it; a run equal to `previous`'s is
 * `previous`'s, so a table keeps what did not change as the same objects.
 */
export function addressPart(address: Ipv4, shares: MappingShare[], previous?: AddressPart): AddressPart {
  const ports = new Set<number>()
  const lists = new Map<string, NftElement[]>()
  let largest = 0
  let direct = false
  for (const share of shares) {
    const elements = share.byAddress.get(address)
    if (!elements) continue
    const sets = 1 + (elements[0] as number)
    for (let i = 1; i < sets; i++) {
      const port = elements[i] as number
      if (ports.has(port)) throw new ShareConflict(`endpoint ${address} ${port} is claimed twice`)
      ports.add(port)
    }
    largest = Math.max(largest, share.largest)
    direct ||= share.direct
    for (let i = sets; i < elements.length; i += 2 + (elements[i + 1] as number)) {
      const set = elements[i] as string
      let list = lists.get(set)
      if (!list) lists.set(set, (list = []))
      for (let j = 0; j < (elements[i + 1] as number); j++) list.push(elements[i + 2 + j] as NftElement)
    }
  }
  const runs = new Map<string, NftElement[]>()
  let same = previous !== undefined && previous.runs.size === lists.size
  for (const [name, elements] of lists) {
    const run = sortElements({keyType: KEY_TYPES.get(name)!}, elements)
    const before = previous?.runs.get(name)
    if (before && sameElements(run, before)) runs.set(name, before)
    else {
      runs.set(name, run)
      same = false
    }
  }
  const mappings = same ? previous!.mappings : [...new Set([ENDPOINTS_MAP, DIRECT_ENDPOINTS_SET].flatMap((name) => commentedMappings({keyType: KEY_TYPES.get(name)!}, runs.get(name) ?? [])))]
  return {address, shares, runs, largest, direct, mappings}
}

/** Whether two runs hold the same elements in the same order. */
function sameElements(a: readonly NftElement[], b: readonly NftElement[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
