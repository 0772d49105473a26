/**
 * Mappings that ask for an address or a port: `addressPool` instead of `addresses`, or ports whose
 * `port` is left out. What allocation gave them is recorded in status.allocated (allocate/mappings.ts
 * decides, sync/mapping-allocation.ts writes); a Mapping is planned on the record once it fits what
 * the spec asks for, exactly like a Mapping that listed those addresses and ports itself.
 */
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import {isDns1123Subdomain} from './names.js'
import type {AllocatedRecord, MappingResource, PortMapping, Protocol, ValidMappingSpec} from './types.js'

/** A spec port as asked for: `port` absent when it is left to allocation. */
export interface RequestedPort {
  port?: number
  protocol: Protocol
  servicePort: number
}

/** A Mapping's validated spec, before allocation: `addresses` empty when `addressPool` names where one comes from. */
export interface MappingRequest extends Omit<ValidMappingSpec, 'ports'> {
  addressPool?: string
  ports: RequestedPort[]
}

/** An inclusive range of ports that dynamic ports are picked from (`--dynamic-ports`). */
export interface PortRange {
  first: number
  last: number
}

/** The default of `--dynamic-ports`: the range Kubernetes gives NodePorts. */
export const DEFAULT_DYNAMIC_PORTS: PortRange = {first: 30000, last: 32767}

/** The reason a Mapping asking for an address or a port is not planned when nothing else says why. */
export const NOT_ALLOCATED = 'no address or port allocated yet: status.allocated records none that fits the spec'

/** status.allocated, read and checked; what does not parse is no record. */
export interface Allocated {
  pool?: string
  addresses: Ipv4[]
  ports: {protocol: Protocol; servicePort: number; port: number}[]
}

/** Whether the request leaves an address or a port to allocation. */
export function asksForAllocation(request: MappingRequest): boolean {
  return request.addressPool !== undefined || request.ports.some((port) => port.port === undefined)
}

/** Whether a Mapping, not validated yet, may ask for allocation or hold one: cheap enough to run on every Mapping of a snapshot. */
export function mayAskForAllocation(mapping: MappingResource): boolean {
  const spec = mapping.spec
  if (mapping.status?.allocated !== undefined && mapping.status.allocated !== null) return true
  if (spec === undefined || spec === null || typeof spec !== 'object') return false
  if (spec.addressPool !== undefined && spec.addressPool !== null && spec.addressPool !== '') return true
  return Array.isArray(spec.ports) && spec.ports.some((port: unknown) => typeof port === 'object' && port !== null && ((port as {port?: unknown}).port ?? null) === null)
}

/** `30000-32767` as a range; throws naming what is wrong. */
export function parsePortRange(text: string): PortRange {
  const match = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text)
  const range = match ? {first: Number(match[1]), last: Number(match[2])} : undefined
  if (range === undefined || range.first < 1 || range.last > 65535 || range.first > range.last) {
    throw new Error(`--dynamic-ports ${JSON.stringify(text)} must be a range of ports first-last within 1-65535, e.g. 30000-32767`)
  }
  return range
}

/** `30000-32767`. */
export function formatPortRange(range: PortRange): string {
  return `${range.first}-${range.last}`
}

/** The key of a spec port left to allocation: its protocol and Service port. */
export function requestedPortKey(port: {protocol: Protocol; servicePort: number}): string {
  return `${port.protocol}>${port.servicePort}`
}

function isPort(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535
}

/** status.allocated as a record, or undefined when there is none or it does not parse (then it is allocated again). */
export function readAllocated(value: unknown): Allocated | undefined {
  if (value === undefined || value === null || typeof value !== 'object' || Array.isArray(value)) return undefined
  const {pool, addresses, ports} = value as Record<string, unknown>
  if (!Array.isArray(addresses) || !Array.isArray(ports)) return undefined
  if (pool !== undefined && pool !== null && !isDns1123Subdomain(pool)) return undefined
  const ips = addresses.map(parseIpv4)
  if (ips.some((ip) => ip === undefined)) return undefined
  const read: Allocated['ports'] = []
  for (const entry of ports as unknown[]) {
    const {protocol, servicePort, port} = (entry ?? {}) as Record<string, unknown>
    const lower = typeof protocol === 'string' ? protocol.toLowerCase() : undefined
    if ((lower !== 'tcp' && lower !== 'udp') || !isPort(servicePort) || !isPort(port)) return undefined
    read.push({protocol: lower, servicePort, port})
  }
  return {...(typeof pool === 'string' ? {pool} : {}), addresses: ips as Ipv4[], ports: read}
}

/** The addresses of `recorded` when they are what the request asks for: the request's own, or one address of its pool. */
export function fittingAddresses(request: MappingRequest, recorded: Allocated | undefined): Ipv4[] | undefined {
  if (recorded === undefined) return undefined
  if (request.addressPool !== undefined) return recorded.pool === request.addressPool && recorded.addresses.length === 1 ? recorded.addresses : undefined
  const same = recorded.pool === undefined && recorded.addresses.length === request.addresses.length && recorded.addresses.every((ip, i) => ip === request.addresses[i])
  return same ? recorded.addresses : undefined
}

/** The port `recorded` gives a spec port left to allocation, if any. */
export function recordedPort(recorded: Allocated, port: {protocol: Protocol; servicePort: number}): number | undefined {
  return recorded.ports.find((entry) => entry.protocol === port.protocol && entry.servicePort === port.servicePort)?.port
}

/** The spec to plan: the request on the recorded addresses and ports, or undefined when the record does not give all it asks for. */
export function resolvedSpec(request: MappingRequest, recorded: Allocated | undefined): ValidMappingSpec | undefined {
  const addresses = fittingAddresses(request, recorded)
  if (addresses === undefined || recorded === undefined) return undefined
  const ports: PortMapping[] = []
  const seen = new Set<string>()
  for (const port of request.ports) {
    const number = port.port ?? recordedPort(recorded, port)
    // A record naming a port the spec also lists (edited by hand) is no record.
    if (number === undefined || seen.has(`${port.protocol}/${number}`)) return undefined
    seen.add(`${port.protocol}/${number}`)
    ports.push({port: number, protocol: port.protocol, servicePort: port.servicePort})
  }
  const {allowedSources, serviceName, mode} = request
  return {addresses: [...addresses], allowedSources, serviceName, mode, ports}
}

/** The record of an allocation, as status.allocated holds it. */
export function allocatedRecord(allocated: Allocated): AllocatedRecord {
  return {
    ...(allocated.pool === undefined ? {} : {pool: allocated.pool}),
    addresses: [...allocated.addresses],
    ports: allocated.ports.map(({protocol, servicePort, port}) => ({protocol, servicePort, port})),
  }
}
