/**
 * The iptables backend's state cut along what changes together: one Mapping's rules and set entries
 * (a MappingShare, rendered once per NatMapping object), and one external address's chain and set
 * entries (an AddressPart, assembled from the shares of the Mappings on it). The sets hold one run
 * of entries per address: every entry starts with `address,`, so in plain string order an
 * address's entries are contiguous, and the runs follow the order of `address,`.
 */
import type {Protocol} from '../../mapping/types.js'
import {fitted, fittedMap} from '../../net/fitted.js'
import {compareIpv4, type Ipv4} from '../../net/ipv4.js'
import type {NatMapping} from '../../plan/model.js'
import {ShareConflict} from '../address-buckets.js'
import {checkEndpoint, checkMappingName} from '../model-checks.js'
import {GroupChains} from './groups.js'
import {commentedMappings} from './mappings.js'
import {addressChainName} from './names.js'
import {dispatchRule, endpointRule} from './render.js'
import {allowEntry, canonicalEntries, endpointEntry, storableNets} from './sets.js'
import type {ChainState} from './types.js'

interface EndpointShare {
  protocol: Protocol
  port: number
  rule: string
  /** Mode direct: the chain of the group the rule jumps to. */
  group?: ChainState
}

/** One Mapping's rules and set entries at one of its addresses. */
interface AddressShare {
  endpoints: EndpointShare[]
  allow: string[]
  endpointEntries: string[]
  unserved: string[]
}

/** Everything one Mapping adds to the state, checked. */
export interface MappingShare {
  mapping: NatMapping
  byAddress: ReadonlyMap<Ipv4, AddressShare>
  /** The group chain and affinity list names its groups take; no other Mapping may take them. */
  names: string[]
  /** Each group chain's first address in numeric order: the one whose chain reaches it first. */
  firstAddress: ReadonlyMap<ChainState, Ipv4>
  direct: boolean
}

/** Renders one Mapping's share; throws what the full render would (perhaps another of its errors first). */
export function mappingShare(mapping: NatMapping): MappingShare {
  checkMappingName(mapping, 'rule comment')
  const groups = new GroupChains()
  const nets = mapping.allowedSources.flatMap(storableNets)
  const byAddress = new Map<Ipv4, AddressShare>()
  const firstAddress = new Map<ChainState, Ipv4>()
  let direct = false
  for (const e of mapping.endpoints) {
    checkEndpoint(mapping, e)
    let share = byAddress.get(e.address)
    if (!share) byAddress.set(e.address, (share = {endpoints: [], allow: [], endpointEntries: [], unserved: []}))
    const group = e.group === undefined ? undefined : groups.chainFor(mapping, e.protocol, e.group)
    if (group !== undefined) {
      direct = true
      const first = firstAddress.get(group)
      if (first === undefined || compareIpv4(e.address, first) < 0) firstAddress.set(group, e.address)
    }
    share.endpoints.push({protocol: e.protocol, port: e.port, rule: endpointRule(addressChainName(e.address), mapping, e, groups), ...(group ? {group} : {})})
    const entry = endpointEntry(e.address, e.protocol, e.port)
    share.endpointEntries.push(entry)
    if (e.group?.members.length === 0) share.unserved.push(entry)
    for (const net of nets) share.allow.push(allowEntry(entry, net))
  }
  // Kept from pass to pass for every Mapping: arrays without the room push leaves, one empty array
  // for the shares without unserved entries, no Map of group chains where there are none, no Map
  // of addresses for a Mapping on one.
  for (const share of byAddress.values()) {
    share.endpoints = fitted(share.endpoints)
    share.allow = fitted(share.allow)
    share.endpointEntries = fitted(share.endpointEntries)
    share.unserved = nonEmpty(fitted(share.unserved))
  }
  return {mapping, byAddress: fittedMap(byAddress), names: nonEmpty(groups.claimedNames()), firstAddress: direct ? firstAddress : NO_GROUP_CHAINS, direct}
}

const NO_ENTRIES: string[] = []

function nonEmpty(items: string[]): string[] {
  return items.length === 0 ? NO_ENTRIES : items
}

const NO_GROUP_CHAINS: ReadonlyMap<ChainState, Ipv4> = new Map()

/** A group chain as one address's endpoints reach it, with the Mapping that owns it. */
export interface ReachedGroup {
  chain: ChainState
  share: MappingShare
}

/** One external address: its dispatch rule, its chain, the group chains it reaches, and its runs of set entries. */
export interface AddressPart {
  address: Ipv4
  shares: MappingShare[]
  dispatch: string
  chain: ChainState
  /** The group chains this address reaches first (of all addresses in numeric order), in the order its rules reach them. */
  groups: ReachedGroup[]
  /** The chains of `groups`. */
  groupChains: ChainState[]
  /** The Mappings its DNAT rules and group jumps name in their comments. */
  mappings: readonly string[]
  /** Rules in its chain and in `groupChains`. */
  rules: number
  allow: string[]
  endpoints: string[]
  unserved: string[]
  direct: boolean
}

/**
 * Assembles one address from the shares of the Mappings on it; a chain or run of entries equal to
 * `previous`'s is `previous`'s, so a state keeps what did not change as the same objects.
 */
export function addressPart(address: Ipv4, shares: MappingShare[], previous?: AddressPart): AddressPart {
  const endpoints: EndpointShare[] = []
  const allow: string[] = []
  const entries: string[] = []
  const unserved: string[] = []
  const owners = new Map<number, MappingShare>()
  const owned = new Map<EndpointShare, MappingShare>()
  let direct = false
  for (const share of shares) {
    const mine = share.byAddress.get(address)
    if (!mine) continue
    direct ||= share.direct
    for (const e of mine.endpoints) {
      const port = e.protocol === 'udp' ? -e.port : e.port
      if (owners.has(port)) throw new ShareConflict(`endpoint ${address} ${e.protocol}/${e.port} is claimed twice`)
      owners.set(port, share)
      owned.set(e, share)
      endpoints.push(e)
    }
    allow.push(...mine.allow)
    entries.push(...mine.endpointEntries)
    unserved.push(...mine.unserved)
  }
  endpoints.sort((a, b) => (a.protocol < b.protocol ? -1 : a.protocol > b.protocol ? 1 : 0) || a.port - b.port)
  const chain = addressChainName(address)
  const groups: ReachedGroup[] = []
  const reached = new Set<ChainState>()
  for (const e of endpoints) {
    if (e.group === undefined || reached.has(e.group)) continue
    reached.add(e.group)
    const share = owned.get(e)!
    if (share.firstAddress.get(e.group) === address) groups.push({chain: e.group, share})
  }
  const rules = kept(endpoints.map((e) => e.rule), previous?.chain.rules)
  return {
    address,
    shares,
    dispatch: previous?.dispatch ?? dispatchRule(address),
    chain: rules === previous?.chain.rules ? previous.chain : {name: chain, rules},
    groups,
    groupChains: groups.map((g) => g.chain),
    mappings: rules === previous?.chain.rules ? previous.mappings : commentedMappings(rules),
    rules: groups.reduce((n, g) => n + g.chain.rules.length, rules.length),
    allow: kept(canonicalEntries(allow), previous?.allow),
    endpoints: kept(canonicalEntries(entries), previous?.endpoints),
    unserved: kept(canonicalEntries(unserved), previous?.unserved),
    direct,
  }
}

/** `previous` when it holds the same strings as `now`, else `now`. */
function kept(now: string[], previous: string[] | undefined): string[] {
  if (previous === undefined || previous.length !== now.length) return now
  for (let i = 0; i < now.length; i++) if (now[i] !== previous[i]) return now
  return previous
}
