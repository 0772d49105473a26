/**
 * The iptables backend's view of kernel state, desired or read back, in the
 * exact text `iptables-save` and `ipset save` print, so that desired and actual
 * compare as plain strings.
 */

export type TableName = 'nat' | 'filter' | 'mangle'
export const TABLES: readonly TableName[] = ['mangle', 'nat', 'filter']

export interface ChainState {
  name: string
  /** Full rule lines as iptables-save prints them: `-A SNM-PREROUTING -d 198.18.0.10/32 -j SNM-A-1a2b3c4d`. */
  rules: string[]
}

export interface TableState {
  /** Chains smartnat owns (names start with SNM-), in render order. */
  chains: ChainState[]
  /** smartnat's jump rules in built-in chains, as iptables-save prints them: `-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING`. */
  jumps: string[]
}

export interface IpsetState {
  name: string
  /** e.g. `hash:ip,port,net` */
  type: string
  /**
   * Creation options as `ipset save` prints them after the type, e.g. `family inet hashsize 1024 maxelem 65536`.
   * The kernel grows hashsize and adds `bucketsize`/`initval`: compare only `family` and `maxelem`.
   */
  options: string
  /** Entries as `ipset save` prints them after `add NAME ` (a /32 net as the bare address), sorted by plain string order. */
  entries: string[]
}

/** One `ip rule`; `ip -j rule` reports it as `{"priority":7001,"fwmark":"0x100000","fwmask":"0xff00000","table":"7001"}`. */
export interface IpRuleState {
  priority: number
  /** `fwmark/fwmask` of `ip -j rule`: `0x100000/0xff00000` */
  fwmark: string
  table: number
}

/**
 * One route of an interface's table. `ip -j route show table N` reports it without the table, as
 * `{"dst":"198.18.0.0/24","dev":"eth1","scope":"link","prefsrc":"198.18.0.10"}` or
 * `{"dst":"default","gateway":"198.18.0.1","dev":"eth1"}`.
 */
export interface IpRouteState {
  table: number
  /** `default` or `198.18.0.0/24` */
  dst: string
  dev: string
  /** `gateway` in `ip -j` output. */
  via?: string
  /** `prefsrc` in `ip -j` output. */
  src?: string
  scope?: 'link'
}

export interface IptablesState {
  tables: Record<TableName, TableState>
  /** Sorted by name. */
  sets: IpsetState[]
  /** Sorted by priority. */
  ipRules: IpRuleState[]
  /** Sorted by table, then dst. */
  routes: IpRouteState[]
}
