/**
 * The nftables backend's view of kernel state, desired or read back from `nft -j`: one table with
 * its sets, maps and chains, plus the ip rules and routes shared with the iptables backend.
 * Rules are small syntax trees of exactly the shapes smartnat renders, so both sides print alike.
 */
import type {RoutingState} from '../../routing/types.js'

/** The source address with its host bits cleared, for a lookup by network: `ip saddr & 255.255.255.0`. */
export type MaskedSource = `ip saddr & ${string}`

/** What a concatenated key or a NAT address is built from. */
export type Selector = 'ip saddr' | 'ip daddr' | 'meta l4proto' | 'th dport' | 'iifname' | 'oifname' | MaskedSource

export type MarkOf = 'meta' | 'ct'

export type NftMatch =
  /** `ip daddr . meta l4proto . th dport @endpoints`, or with `!=` */
  | {kind: 'lookup'; key: Selector[]; set: string; negate: boolean}
  /** `iifname "eth1"` */
  | {kind: 'iifname'; name: string}
  /** `ct state new` */
  | {kind: 'ct state'; state: 'new'}
  /** `ct direction reply` */
  | {kind: 'ct direction'; direction: 'original' | 'reply'}
  /** `ct mark & 0x0ff00000 != 0x00000000` */
  | {kind: 'mark'; of: MarkOf; mask: number; value: number; negate: boolean}
  /** `meta l4proto udp` */
  | {kind: 'l4proto'; protocol: 'tcp' | 'udp'}
  /** `ip daddr 198.18.2.100` */
  | {kind: 'daddr'; ip: string}

export type NftStatement =
  | {kind: 'accept' | 'drop' | 'return' | 'masquerade'}
  /** `ct mark set ct mark & AND | OR` (no `& AND` when AND keeps every bit) */
  | {kind: 'set mark'; of: MarkOf; and: number; or: number}
  /** `dnat to ip daddr . meta l4proto . th dport map @endpoints` */
  | {kind: 'dnat' | 'snat'; key: Selector[]; map: string}
  /** `goto CHAIN` */
  | {kind: 'goto'; chain: string}
  /** `ct mark & MASK vmap { VALUE : goto CHAIN, ... }` */
  | {kind: 'vmap'; of: MarkOf; mask: number; entries: {value: number; chain: string}[]}
  /** `ip daddr . meta l4proto . th dport vmap @direct`: a verdict map of the table */
  | {kind: 'dispatch'; key: Selector[]; map: string}
  /**
   * `dnat to ip daddr . meta l4proto . th dport . numgen random mod N map @targets`: a pick chain's
   * DNAT to one of the N members of the packet's endpoint, slot by slot in the map
   */
  | {kind: 'pick'; key: Selector[]; modulus: number; map: string}
  /** `numgen random mod N vmap { 0 : goto CHAIN, ... }`: entries 0..N-1 in order (a group with affinity) */
  | {kind: 'numgen'; chains: string[]}
  /** `update @SET { ip saddr }` */
  | {kind: 'update'; set: string; key: Selector[]}
  /** `dnat to 198.19.200.11:8080` */
  | {kind: 'dnat to'; ip: string; port: number}
  /** `snat to 198.18.2.10`: the masquerade of an HA pair, to its floating cluster-side address */
  | {kind: 'snat to'; ip: string}
  /**
   * `reject with tcp reset` or `reject` (ICMP port unreachable). nft reads the first back without the
   * `meta l4proto tcp` it needs written before it, so the statement prints that match itself.
   */
  | {kind: 'reject'; with: 'tcp reset' | 'icmp port-unreachable'}

export type NftRule =
  | {matches: NftMatch[]; statement: NftStatement}
  /** A rule of a shape smartnat never renders (someone edited the table), kept as nft's JSON. */
  | {unknown: string}

export interface NftBaseChain {
  /** `route` reroutes a locally generated packet whose mark its chain changed (output hook only). */
  type: 'filter' | 'nat' | 'route'
  hook: 'prerouting' | 'input' | 'forward' | 'output' | 'postrouting'
  priority: number
}

export interface NftChain {
  name: string
  /** Absent for regular chains, reached only by jump or goto. */
  base?: NftBaseChain
  rules: NftRule[]
}

/**
 * A set or map element as written inside `{ }` (syntax.ts, printElement): key, comment, then
 * `: value` for maps, `198.18.0.10 . tcp . 80 comment "default/web tcp/80" : 10.1.2.3 . 8080`.
 * One flat string each: a table holds 100,000 of them at 10,000 Mappings, and an object with arrays
 * of parts took twice the memory (docs/benchmarks.md, "nftables elements as strings"). Equal
 * elements are equal strings; elementKey and elementParts take one apart.
 */
export type NftElement = string

export interface NftSet {
  name: string
  /**
   * One type per concatenated part: `ipv4_addr`, `inet_proto`, `inet_service`, `ifname`, and
   * `integer` for the slot of mode direct's `targets` map (declared with `typeof`, see syntax.ts).
   */
  keyType: string[]
  /** Present for maps: the data types, one per part. */
  dataType?: string[]
  /** `interval` for sets holding prefixes; `dynamic`, `timeout` for the affinity sets rules fill. */
  flags: string[]
  /** Seconds an element of a `timeout` set lives unless refreshed. */
  timeout?: number
  /**
   * Sorted by key. Always empty for a `dynamic` set: its elements are the kernel's, never compared.
   * A daemon's sets make them anew each time they are read (syntax.ts, setMadeOnRead): read once.
   */
  elements: NftElement[]
}

export interface NftTable {
  /** Sorted by name. */
  sets: NftSet[]
  /**
   * Base chains first, in render order; read back in the order nft lists them, except that the
   * direct-mode group and member chains come last, sorted by name, however they were added.
   */
  chains: NftChain[]
}

/** The table, plus the ip rules and routes of reply routing. */
export interface NftState extends RoutingState {
  /** Undefined when the table does not exist. */
  table?: NftTable
}
