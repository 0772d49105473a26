/** Turns routing changes into the stdin of `ip -batch -`, and names the rules and routes a flush removes; pure. */
import {LineBuffer} from '../net/linebuffer.js'
import type {RoutingChanges} from './diff.js'
import type {IpRouteState, IpRuleState, RoutingState} from './types.js'

/** The command that reads the payload. */
export const IP_BATCH: readonly [string, string[]] = ['ip', ['-batch', '-']]

/** `ip rule` arguments that select exactly this rule. */
function ipRuleArgs(rule: IpRuleState): string[] {
  return ['priority', String(rule.priority), ...(rule.fwmark ? ['fwmark', rule.fwmark] : []), 'table', String(rule.table)]
}

/** `ip route` arguments describing this route. */
function ipRouteArgs(route: IpRouteState): string[] {
  return [
    route.dst,
    ...(route.via ? ['via', route.via] : []),
    ...(route.dev ? ['dev', route.dev] : []),
    ...(route.scope ? ['scope', route.scope] : []),
    ...(route.src ? ['src', route.src] : []),
    'table',
    String(route.table),
  ]
}

/** The `ip -batch -` payload: routes before the rules that lead to them, stale rules before their routes. */
export function ipBatchPayload(routing: RoutingChanges): string {
  const out = new LineBuffer()
  for (const route of routing.replaceRoutes) out.write('route', 'replace', ...ipRouteArgs(route))
  for (const rule of routing.addRules) out.write('rule', 'add', ...ipRuleArgs(rule))
  for (const rule of routing.deleteRules) out.write('rule', 'del', ...ipRuleArgs(rule))
  for (const route of routing.deleteRoutes) out.write('route', 'del', route.dst, 'table', String(route.table))
  return out.toString()
}

/** The `ip -batch -` payload that adds smartnat's routes and rules to a host that has none, labelled with its command. */
export function routingPayload(routing: RoutingState): {command: string; text: string} {
  return {command: 'ip -batch -', text: ipBatchPayload({replaceRoutes: routing.routes, addRules: routing.ipRules, deleteRules: [], deleteRoutes: []})}
}

/** What a flush removes, one line per rule and route, as `ip rule`/`ip route` take them. */
export function describeRouting(routing: RoutingState): {ipRules: string[]; routes: string[]} {
  return {ipRules: routing.ipRules.map((rule) => ipRuleArgs(rule).join(' ')), routes: routing.routes.map((route) => ipRouteArgs(route).join(' '))}
}
