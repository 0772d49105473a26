/** Compares desired and actual ip rules and routes and lists the changes between them; pure. */
import {routeDestination} from './parse.js'
import type {IpRouteState, IpRuleState, RoutingState} from './types.js'

export interface RoutingChanges {
  addRules: IpRuleState[]
  deleteRules: IpRuleState[]
  /** Routes missing or different (`ip route replace`). */
  replaceRoutes: IpRouteState[]
  deleteRoutes: IpRouteState[]
}

function ruleKey(rule: IpRuleState): string {
  return `${rule.priority} ${rule.fwmark} ${rule.table}`
}

function routeKey(route: IpRouteState): string {
  return `${route.table} ${routeDestination(route.dst)}`
}

function sameRoute(a: IpRouteState, b: IpRouteState): boolean {
  return a.dev === b.dev && a.via === b.via && a.src === b.src && a.scope === b.scope
}

/** The `ip rule`/`ip route` changes that make `actual` equal `desired`. */
export function diffRouting(desired: RoutingState, actual: RoutingState): RoutingChanges {
  const actualRules = new Set(actual.ipRules.map(ruleKey))
  const desiredRules = new Set(desired.ipRules.map(ruleKey))
  const actualRoutes = new Map(actual.routes.map((r) => [routeKey(r), r]))
  const desiredRoutes = new Set(desired.routes.map(routeKey))
  return {
    addRules: desired.ipRules.filter((r) => !actualRules.has(ruleKey(r))),
    deleteRules: actual.ipRules.filter((r) => !desiredRules.has(ruleKey(r))),
    replaceRoutes: desired.routes.filter((r) => {
      const current = actualRoutes.get(routeKey(r))
      return !current || !sameRoute(current, r)
    }),
    deleteRoutes: actual.routes.filter((r) => !desiredRoutes.has(routeKey(r))),
  }
}

/** How many `ip rule` and `ip route` commands the changes take. */
export function routingChangeCount(changes: RoutingChanges): number {
  return changes.addRules.length + changes.deleteRules.length + changes.replaceRoutes.length + changes.deleteRoutes.length
}

/** Whether the changes write nothing. */
export function isEmptyRouting(changes: RoutingChanges): boolean {
  return routingChangeCount(changes) === 0
}
