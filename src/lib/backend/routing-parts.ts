/** Reply routing cut into parts, for every backend's parts. */
import type {IpRouteState, RoutingState} from '../routing/types.js'
import type {StatePart} from './parts.js'

/** Reply routing as parts, the same for every backend: it serves every Mapping alike. */
export function routingParts(state: RoutingState): StatePart[] {
  return [
    ...state.ipRules.map((rule): StatePart => ({kind: 'ip-rule', where: `table ${rule.table}`, text: `priority ${rule.priority} fwmark ${rule.fwmark} table ${rule.table}`, mappings: []})),
    ...state.routes.map((route): StatePart => ({kind: 'route', where: `table ${route.table}`, text: routeText(route), mappings: []})),
  ]
}

// As `ip route` prints it, without the table the part's `where` names.
function routeText(route: IpRouteState): string {
  const words = [route.dst]
  if (route.via) words.push('via', route.via)
  words.push('dev', route.dev)
  if (route.scope) words.push('scope', route.scope)
  if (route.src) words.push('src', route.src)
  return words.join(' ')
}
