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

/**
 * One Mapping's rules and set entries at one of its addresses, in as few lists as they fit: an object
 * and a list per endpoint and a list per kind of entry took 470 bytes for a Mapping with two ports
 * and two allowed sources, 10,000 Mappings kept from pass to pass.
 */
interface AddressShare {
  /**
   * Each endpoint's protocol and port as one number (udp negative), its DNAT rule and, in mode direct,
   * the chain of the group the rule jumps to (else undefined), one after the other.
   */
  endpoints: readonly (number | string | ChainState | undefined)[]
  /** Each endpoint's set entry, one per endpoint and in their order, then the allow-list entries. */
  entries: string[]
  unserved: string[]
}

/** How many places an endpoint takes in AddressShare.endpoints. */
const ENDPOINT_PLACES = 3

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
  const byAddress = new Map<Ipv4, {endpoints: (number | string | ChainState | undefined)[]; entries: string[]; allow: string[]; unserved: string[]}>()
  const firstAddress = new Map<ChainState, Ipv4>()
  let direct = false
  for (const e of mapping.endpoints) {
    checkEndpoint(mapping, e)
    let share = byAddress.get(e.address)
    if (!share) byAddress.set(e.address, (share = {endpoints: [], entries: [], allow: [], unserved: []}))
    const group = e.group === undefined ? undefined : groups.chainFor(mapping, e.protocol, e.group)
    if (group !== undefined) {
      direct = true
      const first = firstAddress.get(group)
      if (first === undefined || compareIpv4(e.address, first) < 0) firstAddress.set(group, e.address)
    }
    share.endpoints.push(signedPort(e.protocol, e.port), endpointRule(addressChainName(e.address), mapping, e, groups), group)
    const entry = endpointEntry(e.address, e.protocol, e.port)
    share.entries.push(entry)
    if (e.group?.members.length === 0) share.unserved.push(entry)
    for (const net of nets) share.allow.push(allowEntry(entry, net))
  }
  // Kept from pass to pass for every Mapping: lists without the room push leaves, one empty list
  // for the shares without unserved entries, no Map of group chains where there are none, no Map
  // of addresses for a Mapping on one.
  const kept = new Map<Ipv4, AddressShare>()
  for (const [address, share] of byAddress) {
    kept.set(address, {endpoints: fitted(share.endpoints), entries: fitted(share.entries.concat(share.allow)), unserved: nonEmpty(fitted(share.unserved))})
  }
  return {mapping, byAddress: fittedMap(kept), names: nonEmpty(groups.claimedNames()), firstAddress: direct ? firstAddress : NO_GROUP_CHAINS, direct}
}

const NO_ENTRIES: string[] = []

/** Protocol and port as one number: udp negative. */
function signedPort(protocol: Protocol, port: number): number {
  return protocol === 'udp' ? -port : port
}

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
  const endpoints: {port: number; rule: string; group: ChainState | undefined; share: MappingShare}[] = []
  const allow: string[] = []
  const entries: string[] = []
  const unserved: string[] = []
  const ports = new Set<number>()
  let direct = false
  for (const share of shares) {
    const mine = share.byAddress.get(address)
    if (!mine) continue
    direct ||= share.direct
    const count = mine.endpoints.length / ENDPOINT_PLACES
    for (let i = 0; i < mine.endpoints.length; i += ENDPOINT_PLACES) {
      const port = mine.endpoints[i] as number
      if (ports.has(port)) throw new ShareConflict(`endpoint ${address} ${port < 0 ? 'udp' : 'tcp'}/${Math.abs(port)} is claimed twice`)
      ports.add(port)
      endpoints.push({port, rule: mine.endpoints[i + 1] as string, group: mine.endpoints[i + 2] as ChainState | undefined, share})
    }
    for (let i = 0; i < mine.entries.length; i++) (i < count ? entries : allow).push(mine.entries[i]!)
    unserved.push(...mine.unserved)
  }
  // tcp before udp, each by port: tcp's ports are positive, udp's negative.
  endpoints.sort((a, b) => (a.port > 0 === b.port > 0 ? Math.abs(a.port) - Math.abs(b.port) : b.port - a.port))
  const chain = addressChainName(address)
  const groups: ReachedGroup[] = []
  const reached = new Set<ChainState>()
  for (const e of endpoints) {
    if (e.group === undefined || reached.has(e.group)) continue
    reached.add(e.group)
    if (e.share.firstAddress.get(e.group) === address) groups.push({chain: e.group, share: e.share})
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
