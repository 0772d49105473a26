/** External interfaces: their connection-mark index, reply routing table, subnets and gateway. */
import {checkInterfaceName} from '../net/interface-name.js'
import {MAX_INTERFACE_INDEX} from '../net/marks.js'
import {compareCidr, intToIpv4, ipv4ToInt, parseCidr, prefixMask, type Cidr, type Ipv4} from '../net/ipv4.js'
import {compareText} from './order.js'
import type {HostInfo, HostInterface, InterfaceFault, NatInterface, PlanOptions} from './model.js'

/** Reply table of interface `index` is TABLE_BASE + index (also the `ip rule` priority). */
export const TABLE_BASE = 7000

/** External interfaces as planned: those that can carry replies, and why the others cannot. */
export interface PlannedInterfaces {
  /** Sorted by name. */
  interfaces: NatInterface[]
  /** Sorted by interface name. */
  faults: InterfaceFault[]
}

/** The one line an operator reads about an interface this host cannot serve, given why. */
export function interfaceFaultProblem(reason: string): string {
  return `${reason}; no Mapping is served on its addresses`
}

/**
 * Plans every external interface that has an IPv4 address, whether or not a Mapping uses it yet,
 * so an interface's index (and so its mark) does not move when Mappings come and go. An interface
 * that cannot be planned (its gateway falls outside its subnet or onto its own address, its name
 * cannot go into rules) keeps its index but is left out, with the reason, so the others are served.
 */
export function planInterfaces(host: HostInfo, options: Pick<PlanOptions, 'gwOffset' | 'defaultGwInterface'>): PlannedInterfaces {
  const usable = host.interfaces.filter((iface) => iface.addresses.length > 0)
  const names = new Set<string>()
  for (const iface of usable) {
    if (names.has(iface.name)) throw new Error(`interface ${iface.name} is listed twice in the host's interfaces`)
    names.add(iface.name)
  }
  if (usable.length > MAX_INTERFACE_INDEX) {
    throw new Error(`${usable.length} external interfaces have addresses; at most ${MAX_INTERFACE_INDEX} fit in the connection mark`)
  }
  const planned: PlannedInterfaces = {interfaces: [], faults: []}
  ;[...usable]
    .sort((a, b) => compareText(a.name, b.name))
    .forEach((iface, position) => {
      try {
        planned.interfaces.push(planInterface(iface, position + 1, options))
      } catch (error) {
        planned.faults.push({interface: iface.name, reason: (error as Error).message})
      }
    })
  return planned
}

function planInterface(iface: HostInterface, index: number, options: Pick<PlanOptions, 'gwOffset' | 'defaultGwInterface'>): NatInterface {
  checkInterfaceName(iface.name)
  const subnets = connectedSubnets(iface)
  if (iface.name === options.defaultGwInterface) return {name: iface.name, index, subnets}
  const primary = subnetOf(iface, iface.addresses[0]!)
  return {name: iface.name, index, table: TABLE_BASE + index, subnets, gateway: gatewayOf(iface, primary, options.gwOffset)}
}

function subnetOf(iface: HostInterface, {address, prefixLength}: {address: Ipv4; prefixLength: number}): Cidr {
  const parsed = parseCidr(`${address}/${prefixLength}`)
  if (!parsed.ok) throw new Error(`interface ${iface.name}: address ${address}/${prefixLength}: ${parsed.reason}`)
  return parsed.cidr
}

// Several addresses in one subnet share its route; the first one listed is the source, as the
// kernel would choose for the connected route.
function connectedSubnets(iface: HostInterface): NatInterface['subnets'] {
  const subnets = new Map<Cidr, Ipv4>()
  for (const address of iface.addresses) {
    const cidr = subnetOf(iface, address)
    if (!subnets.has(cidr)) subnets.set(cidr, address.address)
  }
  return [...subnets].sort(([a], [b]) => compareCidr(a, b)).map(([cidr, source]) => ({cidr, source}))
}

/** The gateway `offset` hosts from the start (offset > 0) or from the broadcast end (offset < 0) of a subnet. */
export function gatewayOf(iface: HostInterface, subnet: Cidr, offset: number): Ipv4 {
  const [networkText, lengthText] = subnet.split('/') as [Ipv4, string]
  const length = Number(lengthText)
  const network = ipv4ToInt(networkText)
  const broadcast = (network | ~prefixMask(length)) >>> 0
  // /31 links have no network or broadcast address (RFC 3021): both addresses are hosts.
  const [first, last] = length >= 31 ? [network, broadcast] : [network + 1, broadcast - 1]
  const candidate = offset > 0 ? network + offset : broadcast + offset
  if (candidate < first || candidate > last) {
    const hosts = `${intToIpv4(first)}..${intToIpv4(last)}`
    throw new Error(`interface ${iface.name}: --gw-offset ${offset} falls outside the hosts of ${subnet} (${hosts})`)
  }
  const gateway = intToIpv4(candidate)
  if (iface.addresses.some((a) => a.address === gateway)) {
    throw new Error(`interface ${iface.name}: --gw-offset ${offset} gives ${gateway}, which is this host's own address`)
  }
  return gateway
}
