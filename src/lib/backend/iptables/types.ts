/**
 * The iptables backend's view of kernel state, desired or read back, in the
 * exact text `iptables-save` and `ipset save` print, so that desired and actual
 * compare as plain strings.
 */
import type {RoutingState} from '../../routing/types.js'

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

/** Owned chains, jumps and sets, plus the ip rules and routes of reply routing. */
export interface IptablesState extends RoutingState {
  tables: Record<TableName, TableState>
  /** Sorted by name. */
  sets: IpsetState[]
}

/** The state with nothing of smartnat's in it: applying it removes exactly what smartnat owns. */
export function emptyIptablesState(): IptablesState {
  const tables = Object.fromEntries(TABLES.map((t): [TableName, TableState] => [t, {chains: [], jumps: []}])) as Record<TableName, TableState>
  return {tables, sets: [], ipRules: [], routes: []}
}
