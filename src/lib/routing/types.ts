/**
 * Reply routing as both backends program it: one `ip rule` and one routing table per external
 * interface, in the exact form `ip -j` prints them back, so desired and actual compare as values.
 */

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

/** The routing part of a backend's state. */
export interface RoutingState {
  /** Sorted by priority. */
  ipRules: IpRuleState[]
  /** Sorted by table, then dst. */
  routes: IpRouteState[]
}
