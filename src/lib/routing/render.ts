/** Reply routing of a NatModel: one `ip rule` and one routing table per external interface with a table; pure. */
import {INTERFACE_MASK, hex, interfaceMark} from '../net/marks.js'
import {TABLE_BASE} from '../plan/interfaces.js'
import type {NatModel} from '../plan/model.js'
import type {IpRouteState, IpRuleState} from './types.js'

/** `ip rule`s sending packets marked with an interface's index to its table, sorted by priority. */
export function renderIpRules(model: NatModel): IpRuleState[] {
  return model.interfaces
    .filter((iface) => iface.table !== undefined)
    .map((iface) => ({
      priority: TABLE_BASE + iface.index,
      fwmark: `${hex(interfaceMark(iface.index))}/${hex(INTERFACE_MASK)}`,
      table: iface.table!,
    }))
    .sort((a, b) => a.priority - b.priority)
}

/** Each interface table's connected subnets and default route, sorted by table, then dst. */
export function renderRoutes(model: NatModel): IpRouteState[] {
  const routes: IpRouteState[] = []
  for (const iface of model.interfaces) {
    if (iface.table === undefined) continue
    for (const subnet of iface.subnets) {
      routes.push({table: iface.table, dst: subnet.cidr, dev: iface.name, src: subnet.source, scope: 'link'})
    }
    if (iface.gateway) routes.push({table: iface.table, dst: 'default', dev: iface.name, via: iface.gateway})
  }
  return routes.sort((a, b) => a.table - b.table || (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0))
}
