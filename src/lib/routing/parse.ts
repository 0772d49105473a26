/** Reads back what `ip -j rule` and `ip -j route` print: smartnat's ip rules and routes only; pure. */
import {MAX_INTERFACE_INDEX} from '../net/marks.js'
import {TABLE_BASE} from '../plan/interfaces.js'
import {compareText} from '../plan/order.js'
import type {IpRouteState, IpRuleState} from './types.js'

/** Whether a routing table id, or an `ip rule` priority, is one smartnat gives an external interface. */
export function isOwnedRoutingTable(id: number): boolean {
  return Number.isInteger(id) && id > TABLE_BASE && id <= TABLE_BASE + MAX_INTERFACE_INDEX
}

/** The objects of a JSON array that `ip -j` printed; `what` names the command in the error. */
export function parseJsonArray(text: string, what: string): Record<string, unknown>[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(text.trim() === '' ? '[]' : text)
  } catch (error) {
    throw new Error(`${what}: output is not JSON`, {cause: error})
  }
  if (!Array.isArray(parsed)) throw new Error(`${what}: output is not a JSON array`)
  return parsed.filter((item): item is Record<string, unknown> => typeof item === 'object' && item !== null)
}

/** Parses `ip -j rule show` into smartnat's rules: priority and table both in the owned range. */
export function parseIpRules(json: string): IpRuleState[] {
  const rules: IpRuleState[] = []
  for (const item of parseJsonArray(json, 'ip -j rule show')) {
    const priority = Number(item.priority)
    const table = Number(item.table)
    if (!isOwnedRoutingTable(priority) || !isOwnedRoutingTable(table)) continue
    const mark = typeof item.fwmark === 'string' ? item.fwmark : ''
    // ip prints the mask only when it is not all ones.
    const fwmark = typeof item.fwmask === 'string' ? `${mark}/${item.fwmask}` : mark
    rules.push({priority, fwmark, table})
  }
  return rules.sort((a, b) => a.priority - b.priority || a.table - b.table || compareText(a.fwmark, b.fwmark))
}

/** A route destination in one spelling: `default` or `address/length`. */
export function routeDestination(dst: string): string {
  return dst === 'default' || dst.includes('/') ? dst : `${dst}/32`
}

/** Parses `ip -j route show table all` into the routes in smartnat's tables. */
export function parseIpRoutes(json: string): IpRouteState[] {
  const routes: IpRouteState[] = []
  for (const item of parseJsonArray(json, 'ip -j route show table all')) {
    const table = Number(item.table)
    if (!isOwnedRoutingTable(table) || typeof item.dst !== 'string') continue
    const route: IpRouteState = {table, dst: routeDestination(item.dst), dev: typeof item.dev === 'string' ? item.dev : ''}
    if (typeof item.gateway === 'string') route.via = item.gateway
    if (typeof item.prefsrc === 'string') route.src = item.prefsrc
    if (item.scope === 'link') route.scope = 'link'
    routes.push(route)
  }
  return routes.sort((a, b) => a.table - b.table || compareText(a.dst, b.dst))
}
