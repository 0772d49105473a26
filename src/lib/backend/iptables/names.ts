/** Names smartnat owns in the kernel (iptables backend); see docs/kernel-layout.md. The marks are in net/marks.ts. */
import type {Ipv4} from '../../net/ipv4.js'
import {cachedHashName, shortHash} from '../../net/hash.js'
import {isGoOnlyName} from './legacy-names.js'

/** Every chain and set smartnat owns starts with this; of the others only the Go controller's (legacy-names.ts) do. */
export const OWNED_PREFIX = 'SNM-'

/** The kernel limits chain names to 28 characters (XT_EXTENSION_MAXNAMELEN less the NUL). */
export const MAX_CHAIN_NAME = 28
/** The kernel limits set names to 31 characters (IPSET_MAXNAMELEN - 1). */
export const MAX_SET_NAME = 31

export const PREROUTING_CHAIN = 'SNM-PREROUTING'
export const POSTROUTING_CHAIN = 'SNM-POSTROUTING'
export const INPUT_CHAIN = 'SNM-INPUT'
export const FORWARD_CHAIN = 'SNM-FORWARD'
/** mangle chain that routes the host's own answers (mode direct's refusals) like the replies they are. */
export const OUTPUT_CHAIN = 'SNM-OUTPUT'
/** nat chain of the egress SNAT rules, entered only by connections that carry the egress mark. */
export const SNAT_CHAIN = 'SNM-SNAT'

export const ALLOW_SET = 'SNM-ALLOW'
export const ENDPOINTS_SET = 'SNM-ENDPOINTS'
/** Mode direct: endpoints whose group has no member, where new connections from allowed sources are refused. */
export const UNSERVED_SET = 'SNM-UNSERVED'
/** A set being refilled is built under this suffix and swapped in, so lookups never see it half-full. */
export const TEMP_SET_SUFFIX = '-T'

/** Comment on the jump rules smartnat puts into built-in chains. */
export const JUMP_COMMENT = 'smartnat'

/**
 * Whether smartnat owns a chain or set of this name (the only test flush and cleanup use). The Go
 * controller's SNM-PREROUTING shares smartnat's name: parse.ts tells the two apart by their rules.
 */
export function isOwnedName(name: string): boolean {
  return name.startsWith(OWNED_PREFIX) && !isGoOnlyName(name)
}

/** Every address chain's name starts with this. */
export const ADDRESS_CHAIN_PREFIX = `${OWNED_PREFIX}A-`

/** The nat chain holding the per-port DNAT rules of one external address. */
export function addressChainName(address: Ipv4): string {
  return `${ADDRESS_CHAIN_PREFIX}${shortHash(address)}`
}

/**
 * Group chains and affinity lists come by the ten thousand (one per Service port, one per endpoint of it):
 * 64 bits of hash keep a collision among 100,000 names below one in a billion, where the 32 bits of
 * an address chain would give two of 30,000 names the same hash on about one host in ten.
 */
const GROUP_HASH_LENGTH = 16

/** Every group chain's name starts with this. */
export const GROUP_CHAIN_PREFIX = `${OWNED_PREFIX}G-`
const AFFINITY_LIST_PREFIX = `${OWNED_PREFIX}E-`

function hashedName(prefix: string, text: string): string {
  return cachedHashName(prefix, text, GROUP_HASH_LENGTH)
}

/** Mode direct: the nat chain that spreads new connections over one group's members. */
export function groupChainName(groupId: string): string {
  return hashedName(GROUP_CHAIN_PREFIX, groupId)
}

/** Mode direct with affinity: the `recent` list of the clients one member of a group served. */
export function affinityListName(groupId: string, member: {ip: Ipv4; port: number}): string {
  return hashedName(AFFINITY_LIST_PREFIX, `${groupId} ${member.ip}:${member.port}`)
}

/** Whether a chain of this name spreads connections over a group (tracing and parts read it as a whole). */
export function isGroupChainName(name: string): boolean {
  return name.startsWith(GROUP_CHAIN_PREFIX)
}

/** The set of pod IPs whose new connections leave with one external address (the SNAT choice). */
export function egressSetName(address: Ipv4): string {
  return `${OWNED_PREFIX}EG-${shortHash(address)}`
}

/** The set of pod IPs whose new connections belong to one external interface (the connection mark). */
export function egressInterfaceSetName(interfaceIndex: number): string {
  return `${OWNED_PREFIX}EGRESS-${interfaceIndex}`
}

export function tempSetName(set: string): string {
  return `${set}${TEMP_SET_SUFFIX}`
}
