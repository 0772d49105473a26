/** Reply routing of the nftables backend: the iptables backend's ip rules and routes, diffed by its code. */
import {diffIptablesState} from '../iptables/diff.js'
import type {RoutingChanges} from '../iptables/diff.js'
import {emptyIptablesState} from '../iptables/flush.js'
import type {NftState} from './types.js'

export type {RoutingChanges}
export {ipBatchPayload, ipRouteArgs, ipRuleArgs} from '../iptables/payloads.js'
export {parseIpRoutes, parseIpRules} from '../iptables/parse.js'
export {READ_COMMANDS as IP_READ_COMMANDS} from '../iptables/read.js'
export {IP_BATCH} from '../iptables/apply.js'

type Routing = Pick<NftState, 'ipRules' | 'routes'>

/** The `ip rule`/`ip route` changes that make `actual` equal `desired`, exactly as the iptables backend computes them. */
export function diffRouting(desired: Routing, actual: Routing): RoutingChanges {
  const only = (state: Routing) => ({...emptyIptablesState(), ipRules: state.ipRules, routes: state.routes})
  return diffIptablesState(only(desired), only(actual)).routing
}

export function isEmptyRouting(changes: RoutingChanges): boolean {
  return changes.addRules.length + changes.deleteRules.length + changes.replaceRoutes.length + changes.deleteRoutes.length === 0
}
