/** Mode direct sends packets straight to the pods: whether this host has a route to each of them. */
import {routeTo} from '../host/route.js'
import type {Runner} from '../host/runner.js'
import {compareIpv4, parseIpv4, type Ipv4} from '../net/ipv4.js'
import type {HostInfo} from '../plan/model.js'

/** This host's route to one member of an endpoint group. */
export interface MemberRoute {
  ip: string
  /** Interface the route leaves by; null when there is no route. */
  dev: string | null
  gateway: string | null
  /** Why there is no route; null when there is one. */
  error: string | null
  /** It leaves by an external interface: most likely the default route, not one to the pod network. */
  external: boolean
}

/** Looks up this host's route to each distinct address of `members` (`ip:port`), in address order. */
export async function memberRoutes(runner: Runner, members: readonly string[], host: HostInfo): Promise<MemberRoute[]> {
  const ips = [...new Set(members.map((m) => parseIpv4(m.slice(0, m.lastIndexOf(':')))).filter((ip): ip is Ipv4 => ip !== undefined))].sort(compareIpv4)
  const external = new Set(host.interfaces.map((i) => i.name))
  const routes = await Promise.all(ips.map((ip) => routeTo(runner, ip)))
  return routes.map((r) => ({ip: r.ip, dev: r.dev, gateway: r.gateway, error: r.error, external: r.dev !== null && external.has(r.dev)}))
}

/** `via 198.18.4.2 dev cluster0`, `dev cluster0`, or `no route (Network is unreachable)`. */
export function routeText(route: MemberRoute): string {
  if (route.error !== null || route.dev === null) return `no route (${route.error ?? 'none reported'})`
  return `${route.gateway ? `via ${route.gateway} ` : ''}dev ${route.dev}`
}

/** What an operator must add when a member has no route, or one that goes out where clients come from; null when all is well. */
export function routeAdvice(routes: readonly MemberRoute[]): string | null {
  const missing = routes.filter((r) => r.error !== null || r.dev === null).map((r) => r.ip)
  const outward = routes.filter((r) => r.error === null && r.external).map((r) => `${r.ip} (dev ${r.dev})`)
  const said: string[] = []
  if (missing.length > 0) said.push(`no route to ${missing.join(', ')}`)
  if (outward.length > 0) said.push(`${outward.join(', ')} leave by an external interface, most likely by the default route`)
  if (said.length === 0) return null
  return `${said.join('; ')}: mode direct needs a route from this host to the pod network, through the cluster (e.g. ip route add POD-CIDR via NODE-IP)`
}

/** Said when the routes could not be looked up: what this host needs all the same. */
export const ROUTE_NEEDED = 'this host needs a route to each member (the pod network), through the cluster; check with `ip route get MEMBER-IP`'
