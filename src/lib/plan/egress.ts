/** Egress SNAT: which external address each Mapping's pods leave with. */
import {flat} from '../net/fitted.js'
import {compareIpv4, sortByIpv4, type Ipv4} from '../net/ipv4.js'
import {compareNames} from './order.js'
import type {NatEgress, NatMapping} from './model.js'

/**
 * Groups pod IPs by the first local address of their Mapping. `oldestFirst` must be in
 * conflict order: a pod IP shared by several Mappings leaves with the oldest one's address.
 */
export function planEgress(oldestFirst: readonly NatMapping[]): NatEgress[] {
  const claimed = new Set<Ipv4>()
  const groups = new Map<Ipv4, {interface: string; podIPs: Ipv4[]; mappings: NatMapping[]}>()
  for (const mapping of oldestFirst) {
    const first = mapping.addresses[0]
    if (!first) continue
    const podIPs = mapping.podIPs.filter((ip) => !claimed.has(ip))
    if (podIPs.length === 0) continue
    for (const ip of podIPs) claimed.add(ip)
    const group = groups.get(first.address) ?? {interface: first.interface, podIPs: [], mappings: []}
    group.podIPs.push(...podIPs)
    group.mappings.push(mapping)
    groups.set(first.address, group)
  }
  return [...groups]
    .sort(([a], [b]) => compareIpv4(a, b))
    .map(([address, group]) => ({
      address,
      interface: group.interface,
      podIPs: sortByIpv4(group.podIPs, (ip) => ip),
      mappings: group.mappings.sort(compareNames).map((m) => flat(`${m.namespace}/${m.name}`)),
    }))
}
