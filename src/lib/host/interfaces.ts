/** External interfaces and their IPv4 addresses, read from `ip -j addr show`. */
import {parseIpv4} from '../net/ipv4.js'
import type {HostAddress, HostInfo, HostInterface} from '../plan/model.js'
import type {Runner} from './runner.js'

/** Interfaces smartnat treats as external unless told otherwise (the original's SNCTRLR_INTERFACES_PATTERN). */
export const DEFAULT_INTERFACES_PATTERN = '^eth[1-9][0-9]*$'

/** Compiles an `--interfaces` pattern, saying which pattern is broken and why. */
export function compileInterfacesPattern(pattern: string): RegExp {
  try {
    return new RegExp(pattern)
  } catch (error) {
    throw new Error(`interfaces pattern "${pattern}" is not a valid regular expression: ${(error as Error).message}`, {
      cause: error,
    })
  }
}

/** Reads the IPv4 addresses of the interfaces whose name matches `pattern`. */
export async function readHostInterfaces(runner: Runner, pattern: RegExp): Promise<HostInfo> {
  const {stdout} = await runner.run('ip', ['-j', '-4', 'addr', 'show'])
  return parseIpAddrJson(stdout, pattern)
}

/** Every IPv4 address assigned to any interface but lo right now, as `IFACE=ADDRESS`. */
export async function readAssignedAddresses(runner: Runner): Promise<Set<string>> {
  const {stdout} = await runner.run('ip', ['-j', '-4', 'addr', 'show'])
  const host = parseIpAddrJson(stdout, /^/)
  return new Set(host.interfaces.flatMap((iface) => iface.addresses.map((a) => `${iface.name}=${a.address}`)))
}

interface IpAddrInfo {
  family?: string
  local?: string
  prefixlen?: number
}

interface IpLink {
  ifname?: string
  addr_info?: IpAddrInfo[]
}

/** Parses `ip -j addr show` output; interfaces and addresses keep the kernel's order, so each primary address comes first. */
export function parseIpAddrJson(json: string, pattern: RegExp): HostInfo {
  let links: unknown
  try {
    links = JSON.parse(json)
  } catch (error) {
    throw new Error(`ip -j addr show: output is not JSON: ${(error as Error).message}`, {cause: error})
  }
  if (!Array.isArray(links)) throw new Error('ip -j addr show: output is not a JSON array of interfaces')

  const interfaces: HostInterface[] = []
  for (const link of links as IpLink[]) {
    // `ip -4` prints an empty object for interfaces that have no IPv4 address.
    const name = link?.ifname
    if (typeof name !== 'string' || name === 'lo' || !pattern.test(name)) continue
    const addresses = (link.addr_info ?? []).flatMap((info): HostAddress[] => {
      if (info.family !== 'inet') return []
      const address = parseIpv4(info.local)
      const prefixLength = info.prefixlen
      if (!address || typeof prefixLength !== 'number' || prefixLength < 0 || prefixLength > 32) {
        throw new Error(`ip -j addr show: interface ${name} has a malformed IPv4 address ${JSON.stringify(info)}`)
      }
      return [{address, prefixLength}]
    })
    if (addresses.length > 0) interfaces.push({name, addresses})
  }
  return {interfaces}
}
