/**
 * The checks a renderer makes on the NatModel before any of its values reach a kernel payload.
 * The planner only lets validated values through; these make that a property of the renderers
 * too, so a model built any other way still cannot inject a rule, an option or a line.
 */
import {isDns1123Subdomain} from '../mapping/names.js'
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import type {NatEndpoint, NatMapping} from '../plan/model.js'

/** Returns `address` when it is an IPv4 address written the one way the kernel tools print it. */
export function checkAddress(address: Ipv4): Ipv4 {
  // parseIpv4 gives undefined for what is not text, which must not pass as an address equal to itself.
  if (typeof address !== 'string' || parseIpv4(address) !== address) throw new Error(`${JSON.stringify(address)} is not an IPv4 address in canonical form`)
  return address
}

/** Fails unless the Mapping's namespace and name are safe inside a comment of the kind given. */
export function checkMappingName(mapping: NatMapping, comment: 'rule comment' | 'element comment'): void {
  if (!isDns1123Subdomain(mapping.namespace) || !isDns1123Subdomain(mapping.name)) {
    throw new Error(`mapping ${JSON.stringify(`${mapping.namespace}/${mapping.name}`)}: name cannot be used in a${comment === 'element comment' ? 'n' : ''} ${comment}`)
  }
}

/** A value as an error message shows it: what a broken model holds may not even turn into text. */
function shown(value: unknown): string {
  try {
    return JSON.stringify(value) ?? typeof value
  } catch {
    return `a ${typeof value} that cannot be shown`
  }
}

function isPort(port: number): boolean {
  return Number.isInteger(port) && port >= 1 && port <= 65535
}

/** Fails unless the endpoint's protocol, ports and addresses (its group's too) can be written into a payload as they are. */
export function checkEndpoint(mapping: NatMapping, e: NatEndpoint): void {
  const where = `mapping ${mapping.namespace}/${mapping.name}`
  if (e.protocol !== 'tcp' && e.protocol !== 'udp') throw new Error(`${where}: protocol ${JSON.stringify(e.protocol)} is not tcp or udp`)
  const targets = e.group === undefined ? [{ip: e.targetIP, port: e.targetPort}] : e.group.members
  if (e.group !== undefined && !isPort(e.port)) throw new Error(`${where}: port ${shown(e.port)} is outside 1..65535`)
  for (const target of targets) {
    if (!isPort(e.port) || !isPort(target.port)) throw new Error(`${where}: port ${shown(e.port)} -> ${shown(target.port)} is outside 1..65535`)
  }
  if (e.group !== undefined) checkGroup(where, e.group)
  try {
    checkAddress(e.address)
    for (const target of targets) checkAddress(target.ip)
  } catch (error) {
    throw new Error(`${where}: ${(error as Error).message}`, {cause: error})
  }
}

/** Longest affinity the kernel tools take as one timeout, and the API server admits: one day. */
const MAX_AFFINITY_SECONDS = 86400

function checkGroup(where: string, group: NatEndpoint['group'] & object): void {
  // Hashed into chain names, never written itself: any text will do, but it must be text.
  if (typeof group.id !== 'string' || group.id === '') throw new Error(`${where}: group id ${JSON.stringify(group.id)} is not a non-empty string`)
  const {affinitySeconds} = group
  if (affinitySeconds !== undefined && (!Number.isInteger(affinitySeconds) || affinitySeconds < 1 || affinitySeconds > MAX_AFFINITY_SECONDS)) {
    throw new Error(`${where}: affinity timeout ${shown(affinitySeconds)} is outside 1..${MAX_AFFINITY_SECONDS} seconds`)
  }
}

/** Every endpoint of `mappings`, checked, each claimed by one Mapping only (the planner settles conflicts before this). */
export function checkedEndpoints(mappings: NatMapping[], comment: 'rule comment' | 'element comment'): {mapping: NatMapping; endpoint: NatEndpoint}[] {
  // By address, then protocol and port as one number: no key text for each of tens of thousands of endpoints.
  const owners = new Map<Ipv4, Map<number, NatMapping>>()
  const result: {mapping: NatMapping; endpoint: NatEndpoint}[] = []
  for (const mapping of mappings) {
    checkMappingName(mapping, comment)
    for (const endpoint of mapping.endpoints) {
      checkEndpoint(mapping, endpoint)
      const ports = owners.get(endpoint.address) ?? new Map<number, NatMapping>()
      owners.set(endpoint.address, ports)
      const port = endpoint.protocol === 'udp' ? -endpoint.port : endpoint.port
      const owner = ports.get(port)
      if (owner) {
        const key = `${endpoint.address} ${endpoint.protocol}/${endpoint.port}`
        throw new Error(`mapping ${mapping.namespace}/${mapping.name}: endpoint ${key} is also claimed by ${owner.namespace}/${owner.name}`)
      }
      ports.set(port, mapping)
      result.push({mapping, endpoint})
    }
  }
  return result
}
