/**
 * Renders mode direct (docs/kernel-layout-nftables.md, "Mode direct"): the `direct` verdict map that
 * sends each direct endpoint to the pick chain of its group's size, which DNATs through the `targets`
 * map keyed by the endpoint and a random slot: element changes only when members change, however
 * many Mappings. A group with ClientIP affinity keeps a chain of its own, one chain per member and
 * an affinity set per member.
 */
import type {DirectEndpoint, NatGroup, NatMapping} from '../../plan/model.js'
import {compareText} from '../../plan/order.js'
import {DIRECT_ENDPOINTS_SET, DIRECT_MAP, TARGETS_MAP, UNSERVED_SET, affinitySetName, groupChainName, memberChainName, pickChainCount, pickChainName} from './names.js'
import {printElement, sortedSet} from './syntax.js'
import type {NftChain, NftElement, NftRule, NftSet, Selector} from './types.js'

const SOURCE: Selector[] = ['ip saddr']
const ENDPOINT_KEY: Selector[] = ['ip daddr', 'meta l4proto', 'th dport']
const ENDPOINT_TYPE = ['ipv4_addr', 'inet_proto', 'inet_service']
/** The types of the `direct` map, of the `direct_endpoints` and `unserved` sets, and of the `targets` map. */
const DISPATCH = {keyType: ENDPOINT_TYPE, dataType: ['verdict']}
const KEYS = {keyType: ENDPOINT_TYPE}
const TARGETS = {keyType: [...ENDPOINT_TYPE, 'integer'], dataType: ['ipv4_addr', 'inet_service']}

/** A direct endpoint with the Mapping that owns it and the comment its elements carry. */
export interface OwnedDirectEndpoint {
  mapping: NatMapping
  endpoint: DirectEndpoint
  comment: string
}

/** The sets and chains of mode direct; the base chains' rules that lead to them are the caller's. */
export interface DirectTable {
  /** `direct`, `direct_endpoints`, `targets`, `unserved`, and one affinity set per member of a group with affinity. */
  sets: NftSet[]
  /** pick_1 up to pickChainCount: part of the table's structure, in the order of their size. */
  pickChains: NftChain[]
  /** Group and member chains of groups with affinity, sorted by name. */
  chains: NftChain[]
}

export interface Group {
  group: NatGroup
  protocol: 'tcp' | 'udp'
  chain: string
  owner: NatMapping
}

/** The direct-mode part of the table; throws when two groups' chains would share a name or one group is told two ways. */
export function renderDirect(endpoints: OwnedDirectEndpoint[]): DirectTable {
  const groups = collectGroups(endpoints)
  const elements: DirectElements = {dispatch: [], keys: [], unserved: [], targets: []}
  let largest = 0
  for (const owned of endpoints) largest = Math.max(largest, addDirectElements(elements, owned))
  const sets = directSets(elements)
  const affinity = affinityParts(groups.values())
  sets.push(...affinity.sets)
  return {sets, pickChains: renderPickChains(largest), chains: affinity.chains.sort((a, b) => compareText(a.name, b.name))}
}

/** The elements of mode direct's maps and sets, one list per map or set. */
export interface DirectElements {
  dispatch: NftElement[]
  keys: NftElement[]
  unserved: NftElement[]
  targets: NftElement[]
}

/** Adds one direct endpoint's elements; returns the size of its group when a pick chain serves it, else 0. */
export function addDirectElements(out: DirectElements, {endpoint: e, comment}: OwnedDirectEndpoint): number {
  const key = [e.address, e.protocol, String(e.port)]
  out.keys.push(printElement(KEYS, {key, comment}))
  const {members, affinitySeconds} = e.group
  // An empty group is in no verdict map: the packet is not DNATed and meets the reject of `input`.
  if (members.length === 0) out.unserved.push(printElement(KEYS, {key, comment}))
  else if (affinitySeconds !== undefined) out.dispatch.push(printElement(DISPATCH, {key, value: [`goto ${groupChainName(e.group.id)}`], comment}))
  else {
    out.dispatch.push(printElement(DISPATCH, {key, value: [`goto ${pickChainName(members.length)}`], comment}))
    members.forEach((member, slot) => out.targets.push(printElement(TARGETS, {key: [...key, String(slot)], value: [member.ip, String(member.port)], comment})))
    return members.length
  }
  return 0
}

/** The key and value types of mode direct's maps and sets, by name. */
export const DIRECT_SET_TYPES: readonly {name: string; keyType: string[]; dataType?: string[]; of: keyof DirectElements}[] = [
  {name: DIRECT_MAP, ...DISPATCH, of: 'dispatch'},
  {name: DIRECT_ENDPOINTS_SET, ...KEYS, of: 'keys'},
  {name: TARGETS_MAP, ...TARGETS, of: 'targets'},
  {name: UNSERVED_SET, ...KEYS, of: 'unserved'},
]

function directSets(elements: DirectElements): NftSet[] {
  return DIRECT_SET_TYPES.map(({name, keyType, dataType, of}) => sortedSet(name, keyType, elements[of], dataType))
}

/**
 * The chains and affinity sets of the groups with affinity (and members); throws when two of their
 * names hash alike.
 */
export function affinityParts(groups: Iterable<{group: NatGroup; protocol: 'tcp' | 'udp'; chain: string}>): {chains: NftChain[]; sets: NftSet[]} {
  const chains: NftChain[] = []
  const sets: NftSet[] = []
  const names = new Map<string, string>()
  const claim = (name: string, what: string) => {
    const other = names.get(name)
    if (other !== undefined) throw new Error(`${what} and ${other} hash to the same name ${name}; rename one of them`)
    names.set(name, what)
  }
  for (const {group, protocol, chain} of groups) {
    if (group.affinitySeconds === undefined || group.members.length === 0) continue
    claim(chain, `group ${JSON.stringify(group.id)}`)
    const rendered = groupChains(group, protocol)
    for (const member of rendered.chains.slice(1)) claim(member.name, `a member of group ${JSON.stringify(group.id)}`)
    for (const affinity of rendered.affinity) claim(affinity.name, `an affinity set of group ${JSON.stringify(group.id)}`)
    chains.push(...rendered.chains)
    sets.push(...rendered.affinity)
  }
  return {chains, sets}
}

/** pick_1 up to pickChainCount(largest), for a table whose largest group without affinity has `largest` members. */
export function renderPickChains(largest: number): NftChain[] {
  const pickChains: NftChain[] = []
  for (let size = 1; size <= pickChainCount(largest); size++) {
    pickChains.push({name: pickChainName(size), rules: [{matches: [], statement: {kind: 'pick', key: ENDPOINT_KEY, modulus: size, map: TARGETS_MAP}}]})
  }
  return pickChains
}

/** Each group once, by id; an id that two Mappings claim, that its endpoints tell two ways, or that lists a member twice is refused. */
export function collectGroups(endpoints: OwnedDirectEndpoint[]): Map<string, Group> {
  const groups = new Map<string, Group>()
  for (const {mapping, endpoint: e} of endpoints) {
    const known = groups.get(e.group.id)
    const where = `mapping ${mapping.namespace}/${mapping.name}: group ${JSON.stringify(e.group.id)}`
    if (!known) {
      const twice = e.group.members.find((m, i) => e.group.members.findIndex((other) => other.ip === m.ip && other.port === m.port) !== i)
      // Two slots of one member would give it twice the share of the others.
      if (twice) throw new Error(`${where} lists member ${twice.ip}:${twice.port} twice`)
      groups.set(e.group.id, {group: e.group, protocol: e.protocol, chain: groupChainName(e.group.id), owner: mapping})
      continue
    }
    if (known.owner !== mapping) throw new Error(`${where} is also the group of ${known.owner.namespace}/${known.owner.name}`)
    if (known.protocol !== e.protocol || !sameGroup(known.group, e.group)) throw new Error(`${where} differs between the endpoints leading to it`)
  }
  return groups
}

function sameGroup(a: NatGroup, b: NatGroup): boolean {
  if (a === b) return true
  return (
    a.affinitySeconds === b.affinitySeconds &&
    a.members.length === b.members.length &&
    a.members.every((m, i) => m.ip === b.members[i]!.ip && m.port === b.members[i]!.port)
  )
}

/**
 * A group with affinity: its chain first, then one chain per member. A client found in a member's
 * set goes back to that member, before the random pick; the member's chain records the client.
 */
export function groupChains(group: NatGroup, protocol: 'tcp' | 'udp'): {chains: NftChain[]; affinity: NftSet[]} {
  const seconds = group.affinitySeconds!
  const members = group.members.map((member) => ({member, chain: memberChainName(group.id, member), set: affinitySetName(group.id, member, seconds)}))
  const rules: NftRule[] = members.map(({chain, set}) => ({matches: [{kind: 'lookup', key: SOURCE, set, negate: false}], statement: {kind: 'goto', chain}}))
  rules.push({matches: [], statement: {kind: 'numgen', chains: members.map((m) => m.chain)}})
  const chains: NftChain[] = [{name: groupChainName(group.id), rules}]
  const affinity: NftSet[] = []
  for (const {member, chain, set} of members) {
    affinity.push({name: set, keyType: ['ipv4_addr'], flags: ['dynamic', 'timeout'], timeout: seconds, elements: []})
    chains.push({
      name: chain,
      rules: [
        {matches: [], statement: {kind: 'update', set, key: SOURCE}},
        // nft needs the protocol to DNAT to a port.
        {matches: [{kind: 'l4proto', protocol}], statement: {kind: 'dnat to', ip: member.ip, port: member.port}},
      ],
    })
  }
  return {chains, affinity}
}
