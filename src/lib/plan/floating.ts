/**
 * Floating addresses of an active-standby pair (keepalived moves them): they count as this host's
 * own whether or not they are assigned here right now, so both hosts plan the same NAT and a
 * standby is ready before it takes over.
 */
import {cidrContains, parseCidr, parseIpv4, type Ipv4} from '../net/ipv4.js'
import {checkInterfaceName} from '../net/interface-name.js'
import type {HostAddress, HostInfo} from './model.js'

/** One floating external address, the subnet it lives in and the interface keepalived puts it on. */
export interface FloatingAddress {
  interface: string
  address: Ipv4
  prefixLength: number
}

/** Parses `IFACE=ADDRESS/LENGTH[,IFACE=ADDRESS/LENGTH...]`; throws naming the entry that is not one. */
export function parseFloatingAddresses(text: string): FloatingAddress[] {
  const list: FloatingAddress[] = []
  for (const entry of text.split(',').map((part) => part.trim())) {
    if (entry === '') continue
    const fail = (why: string) => new Error(`floating address "${entry}": ${why}; expected IFACE=ADDRESS/LENGTH, e.g. eth1=198.18.0.10/24`)
    const equals = entry.indexOf('=')
    if (equals === -1) throw fail('names no interface')
    const iface = entry.slice(0, equals)
    const addressText = entry.slice(equals + 1)
    try {
      checkInterfaceName(iface)
    } catch (error) {
      throw new Error(`floating address "${entry}": ${(error as Error).message}`, {cause: error})
    }
    const slash = addressText.indexOf('/')
    if (slash === -1) throw fail('has no prefix length')
    const address = parseIpv4(addressText.slice(0, slash))
    if (!address) throw fail(`"${addressText.slice(0, slash)}" is not an IPv4 address`)
    const parsed = parseCidr(addressText)
    if (!parsed.ok) throw fail(parsed.reason)
    if (list.some((known) => known.address === address)) throw fail('is listed twice')
    list.push({interface: iface, address, prefixLength: Number(addressText.slice(slash + 1))})
  }
  return list
}

/**
 * The host as planning sees it: the kernel's addresses without the floating ones, then each floating
 * address after its interface's own, with its configured prefix, so the interfaces are the same whether
 * keepalived has assigned it here or not (and whatever prefix keepalived gave it); those not assigned
 * here are listed in `floatingStandby`. Throws when a
 * floating address is outside every subnet of its interface's own addresses: reply routes take their
 * source from an own address, which a standby must have.
 */
export function withFloatingAddresses(host: HostInfo, floating: readonly FloatingAddress[]): HostInfo {
  if (floating.length === 0) return host
  const isFloating = new Set<string>(floating.map((f) => f.address))
  const assigned = new Set(host.interfaces.flatMap((iface) => iface.addresses.map((a) => `${iface.name}=${a.address}`)))
  const interfaces = host.interfaces.map((iface) => ({name: iface.name, addresses: iface.addresses.filter((a) => !isFloating.has(a.address))}))
  for (const f of floating) {
    const iface = interfaces.find((candidate) => candidate.name === f.interface)
    const own: HostAddress[] = iface?.addresses.filter((a) => !isFloating.has(a.address)) ?? []
    const subnet = parseCidr(`${f.address}/${f.prefixLength}`)
    if (!iface || !subnet.ok || !own.some((a) => a.prefixLength === f.prefixLength && cidrContains(subnet.cidr, a.address))) {
      throw new Error(
        `floating address ${f.address}/${f.prefixLength} on ${f.interface}: ${f.interface} has no address of its own in that subnet, which reply routes need as their source on the standby`,
      )
    }
    iface.addresses.push({address: f.address, prefixLength: f.prefixLength})
  }
  const standby = floating.filter((f) => !assigned.has(`${f.interface}=${f.address}`)).map((f) => f.address)
  return {interfaces: interfaces.filter((iface) => iface.addresses.length > 0), ...(standby.length > 0 ? {floatingStandby: standby} : {})}
}
