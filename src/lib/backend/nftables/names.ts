/** Names and numbers of the nftables backend's one table; the marks are in net/marks.ts, the routing tables in routing/. */
import {cachedHashName} from '../../net/hash.js'
import type {NatGroupMember} from '../../plan/model.js'
import {TABLE_FAMILY, TABLE_NAME} from '../nft-table.js'

/** The table smartnat owns, whole; outside it only the accept in iptables' FORWARD is written (forward-accept.ts). */
export {TABLE_FAMILY, TABLE_NAME}
/** How commands name the table: `ip smartnat`. */
export const TABLE = `${TABLE_FAMILY} ${TABLE_NAME}`

/** Base chains, one per hook smartnat needs. */
export const MANGLE_PREROUTING_CHAIN = 'mangle_prerouting'
/** Mode direct only: reroutes the host's own refusals of unserved endpoints by their interface. */
export const MANGLE_OUTPUT_CHAIN = 'mangle_output'
export const NAT_PREROUTING_CHAIN = 'nat_prerouting'
export const NAT_POSTROUTING_CHAIN = 'nat_postrouting'
export const INPUT_CHAIN = 'input'
export const FORWARD_CHAIN = 'forward'
/** The regular chain a connection whose source is allowed continues in: marks, then DNAT. */
export const NAT_ALLOWED_CHAIN = 'nat_allowed'

/**
 * Priorities one below the iptables tables of the same hook (mangle -150, dstnat -100, srcnat 100,
 * filter 0), so smartnat decides first, like the iptables backend's jumps inserted at position 1.
 */
export const PRIORITY = {
  mangle: -151,
  dstnat: -101,
  srcnat: 99,
  filter: -1,
} as const

/** `external ip . protocol . port : target ip . target port`, for DNAT and for the INPUT drop. */
export const ENDPOINTS_MAP = 'endpoints'
/** `out interface . pod ip : external ip`: the source egress connections leave with. */
export const EGRESS_SNAT_MAP = 'egress_snat'

/**
 * Who may reach which endpoint, one hash set per prefix length of the allowed sources:
 * `external ip . protocol . port . source network` (`. source network` left out for length 0).
 */
export function allowedSetName(prefixLength: number): string {
  // One string per name, not one per Mapping that keeps it as a key.
  return ALLOWED_SET_NAMES[prefixLength] ?? `allowed_${prefixLength}`
}

const ALLOWED_SET_NAMES = Array.from({length: 33}, (_, length) => `allowed_${length}`)

/**
 * Mode direct: `external ip . protocol . port : goto <pick chain>` (or `goto <group chain>` for a
 * group with affinity), every direct endpoint whose group has a member.
 */
export const DIRECT_MAP = 'direct'
/**
 * The keys of DIRECT_MAP as a plain set, for the INPUT drop: nft 1.0.6 refuses a lookup of a
 * verdict map's keys ("Operation not supported").
 */
export const DIRECT_ENDPOINTS_SET = 'direct_endpoints'
/** Direct endpoints whose group has no member: an allowed connection is refused in `input`. */
export const UNSERVED_SET = 'unserved'
/** Mode direct: `external ip . protocol . port . slot : member ip . member port`, slots 0..N-1 per endpoint. */
export const TARGETS_MAP = 'targets'

/** The chain that DNATs a direct endpoint whose group has `size` members (and no affinity) to one of them, picked at random. */
export function pickChainName(size: number): string {
  return `pick_${size}`
}

/** Pick chains the table always has while an endpoint is direct: pick_1 up to this. */
const MIN_PICK_CHAINS = 16

/**
 * How many pick chains a table whose largest group (without affinity) has `largest` members holds:
 * pick_1 up to the next power of two, at least 16. They are part of the table's structure, never
 * added to it one by one: nft 1.0.6 refuses a rule added in a later transaction that looks up
 * `targets` ("conflicting protocols specified: ip vs. th", reading the map's `typeof` back from the
 * kernel), so only a group outgrowing them replaces the table, once per doubling.
 */
export function pickChainCount(largest: number): number {
  let count = MIN_PICK_CHAINS
  while (count < largest) count *= 2
  return count
}

/**
 * 64 bits of hash: ten thousand Mappings with three endpoints make 40,000 chains, and 32 bits would
 * collide among them about once in ten tables. The renderer still refuses a collision.
 */
const DIRECT_HASH_LENGTH = 16

function hashedName(prefix: string, text: string): string {
  return cachedHashName(prefix, text, DIRECT_HASH_LENGTH)
}

/** The chain that spreads a group's new connections over its members. */
export function groupChainName(groupId: string): string {
  return hashedName('group_', groupId)
}

/** The chain that DNATs to one member of a group. */
export function memberChainName(groupId: string, member: NatGroupMember): string {
  return hashedName('member_', `${groupId} ${member.ip}:${member.port}`)
}

/**
 * The clients one member of a group keeps for `seconds`; the timeout is in the name, so a new
 * timeout is a new set rather than a changed declaration.
 */
export function affinitySetName(groupId: string, member: NatGroupMember, seconds: number): string {
  return hashedName('affinity_', `${groupId} ${member.ip}:${member.port} ${seconds}`)
}

// By prefix and length alone: tested on every chain of tables with tens of thousands, and
// everything in smartnat's table is smartnat's.
/** Whether a chain is a direct-mode group or member chain (of a group with affinity): these are added, refilled and deleted one by one. */
export function isDirectChain(name: string): boolean {
  return (
    (name.length === 6 + DIRECT_HASH_LENGTH && name.startsWith('group_')) ||
    (name.length === 7 + DIRECT_HASH_LENGTH && name.startsWith('member_'))
  )
}

/** Whether a set is a direct-mode affinity set: added and deleted one by one, its elements never compared. */
export function isAffinitySet(name: string): boolean {
  return name.length === 9 + DIRECT_HASH_LENGTH && name.startsWith('affinity_')
}

/** Whether a set of the table is one of the allow-lists. */
export function isAllowedSet(name: string): boolean {
  return /^allowed_(?:[0-9]|[12][0-9]|3[0-2])$/.test(name)
}

/** Pod IPs whose new connections belong to one external interface (`--snat`). */
export function egressSetName(interfaceIndex: number): string {
  return `egress_${interfaceIndex}`
}

/** The regular chain that copies one interface's connection mark bits into the packet mark. */
export function restoreChainName(interfaceIndex: number): string {
  return `restore_mark_${interfaceIndex}`
}

/** nft refuses comments longer than this (NFTNL_UDATA_COMMENT_MAXLEN). */
export const MAX_COMMENT = 128
