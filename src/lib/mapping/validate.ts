/** Validation of a Mapping's metadata and spec, with the defaults of the original product applied. */
import {parseCidr, parseIpv4, type Cidr, type Ipv4} from '../net/ipv4.js'
import {asksForAllocation, NOT_ALLOCATED, readAllocated, resolvedSpec, type MappingRequest, type RequestedPort} from './dynamic.js'
import {exposedServiceName, isServiceExposure, WAITING_FOR_ADDRESS} from './loadbalancer.js'
import {isDns1035Label, isDns1123Label, isDns1123Subdomain, showValue} from './names.js'
import type {MappingMode, MappingResource, Protocol, ValidMappingSpec} from './types.js'
import {fitted} from '../net/fitted.js'

export interface ValidateOptions {
  /** Largest number of ports a single Mapping may list (`--max-ports-per-mapping`). */
  maxPortsPerMapping: number
}

export type MappingValidation = {ok: true; spec: ValidMappingSpec} | {ok: false; reason: string}
export type RequestValidation = {ok: true; request: MappingRequest} | {ok: false; reason: string}

const ALL_SOURCES = '0.0.0.0/0' as Cidr
const DEFAULT_MODE: MappingMode = 'service'
const PORT_RANGE = '1..65535'

/** Thrown inside this module only, to stop at the first error; never escapes validateMapping. */
class Invalid extends Error {}

function fail(reason: string): never {
  throw new Invalid(reason)
}

function isMissing(value: unknown): value is null | undefined {
  return value === undefined || value === null
}

/**
 * Validates a Mapping and applies defaults without touching the input; the first error wins. A
 * Mapping that asks for an address or a port is valid once what it asks for is recorded in
 * status.allocated (and nothing marks it pending): it is then planned on what is recorded.
 */
export function validateMapping(m: MappingResource, options: ValidateOptions): MappingValidation {
  const checked = validateRequest(m, options)
  if (!checked.ok) return checked
  const {request} = checked
  if (!asksForAllocation(request)) return {ok: true, spec: {...request, ports: request.ports as ValidMappingSpec['ports']}}
  if (typeof m.pending === 'string') return {ok: false, reason: m.pending}
  const spec = resolvedSpec(request, readAllocated(m.status?.allocated))
  return spec === undefined ? {ok: false, reason: NOT_ALLOCATED} : {ok: true, spec}
}

/** Validates what a Mapping asks for, with defaults applied: its addresses or addressPool, and ports whose `port` may be left to allocation. */
export function validateRequest(m: MappingResource, options: ValidateOptions): RequestValidation {
  try {
    checkMetadata(m)
    const spec = m.spec
    if (isMissing(spec) || typeof spec !== 'object') fail('spec is missing')
    const exposure = isServiceExposure(m)
    if (exposure && Array.isArray(spec.addresses) && spec.addresses.length === 0) fail(WAITING_FOR_ADDRESS)
    const addressPool = exposure ? undefined : validateAddressPool(spec.addressPool)
    return {
      ok: true,
      request: {
        addresses: addressPool === undefined ? validateAddresses(spec.addresses) : noAddresses(spec.addresses),
        ...(addressPool === undefined ? {} : {addressPool}),
        allowedSources: validateAllowedSources(spec.allowedSources, exposure ? 'loadBalancerSourceRanges' : 'allowedSources'),
        serviceName: validateServiceName(spec.serviceName),
        mode: validateMode(spec.mode),
        ports: validatePorts(spec.ports, options.maxPortsPerMapping, !exposure),
      },
    }
  } catch (error) {
    if (error instanceof Invalid) return {ok: false, reason: error.message}
    throw error
  }
}

// Name and namespace end up in rule comments and chain names, so only Kubernetes-valid names pass.
function checkMetadata(m: MappingResource): void {
  const {name, namespace} = m.metadata ?? {}
  if (isMissing(name)) fail('metadata.name is missing')
  if (isServiceExposure(m)) {
    // A Service's name is a DNS-1035 label, and its exposure's name says it is a Service's.
    const service = typeof name === 'string' ? exposedServiceName(name) : undefined
    if (!isDns1035Label(service)) fail(`metadata.name ${showValue(service ?? name)} must be a DNS-1035 label`)
  } else if (!isDns1123Subdomain(name)) {
    fail(`metadata.name ${showValue(name)} must be a DNS-1123 subdomain (lowercase letters, digits, "-" and ".", at most 253 characters)`)
  }
  if (isMissing(namespace)) fail('metadata.namespace is missing')
  if (!isDns1123Label(namespace)) {
    fail(`metadata.namespace ${showValue(namespace)} must be a DNS-1123 label (lowercase letters, digits and "-", at most 63 characters)`)
  }
}

function validateAddressPool(value: unknown): string | undefined {
  if (isMissing(value) || value === '') return undefined
  if (!isDns1123Subdomain(value)) fail(`addressPool ${showValue(value)} must be the name of an AddressPool (a DNS-1123 subdomain)`)
  return value
}

// An address from a pool and addresses of one's own cannot be both: which one would the ports be on?
function noAddresses(value: unknown): Ipv4[] {
  if (isMissing(value) || (Array.isArray(value) && value.length === 0)) return []
  return fail('addresses and addressPool exclude each other: list addresses, or leave them empty and name an addressPool')
}

function validateAddresses(value: unknown): Ipv4[] {
  if (isMissing(value)) fail('addresses is missing, and no addressPool is named to draw one from')
  if (!Array.isArray(value)) fail('addresses must be a list of IPv4 addresses')
  if (value.length === 0) fail('addresses is empty, and no addressPool is named to draw one from')
  const seen = new Map<Ipv4, number>()
  return value.map((text: unknown, i) => {
    const address = parseIpv4(text)
    if (!address) fail(`addresses[${i}] ${showValue(text)} is not an IPv4 address`)
    const first = seen.get(address)
    if (first !== undefined) fail(`addresses[${i}] "${address}" is listed twice (also addresses[${first}])`)
    seen.set(address, i)
    return address
  })
}

// Overlapping or repeated sources are harmless; repeated ones are dropped so each appears once.
function validateAllowedSources(value: unknown, field: string): Cidr[] {
  if (isMissing(value)) return [ALL_SOURCES]
  if (!Array.isArray(value)) fail(`${field} must be a list of CIDRs or IPv4 addresses`)
  if (value.length === 0) return [ALL_SOURCES]
  const sources: Cidr[] = []
  value.forEach((text: unknown, i) => {
    const parsed = parseCidr(text)
    if (!parsed.ok) fail(`${field}[${i}] ${showValue(text)}: ${parsed.reason}`)
    if (!sources.includes(parsed.cidr)) sources.push(parsed.cidr)
  })
  return fitted(sources)
}

function validateServiceName(value: unknown): string {
  if (isMissing(value)) fail('serviceName is missing')
  if (!isDns1035Label(value)) {
    fail(`serviceName ${showValue(value)} must be a DNS-1035 label (lowercase letters, digits and "-", starting with a letter, at most 63 characters)`)
  }
  return value
}

function validateMode(value: unknown): MappingMode {
  if (isMissing(value)) return DEFAULT_MODE
  if (value === 'service' || value === 'direct') return value
  return fail(`mode ${showValue(value)} is unknown (only "service" or "direct")`)
}

function validatePorts(value: unknown, maxPorts: number, allocatable: boolean): RequestedPort[] {
  if (isMissing(value)) fail('ports is missing')
  if (!Array.isArray(value)) fail('ports must be a list')
  if (value.length === 0) fail('ports is empty')
  if (value.length > maxPorts) {
    fail(`ports lists ${value.length} entries, more than the limit of ${maxPorts} (raise it with --max-ports-per-mapping)`)
  }
  const seen = new Map<string, number>()
  return value.map((entry: unknown, i) => {
    const port = validatePort(entry, i, allocatable)
    // A port left to allocation is told apart from the others by the Service port it leads to.
    const key = port.port === undefined ? `${port.protocol} to servicePort ${port.servicePort}` : `${port.protocol}/${port.port}`
    const first = seen.get(key)
    if (first !== undefined) fail(port.port === undefined ? `ports[${i}] asks for a ${key} twice (also ports[${first}])` : `ports[${i}] ${key} is listed twice (also ports[${first}])`)
    seen.set(key, i)
    return port
  })
}

function validatePort(entry: unknown, i: number, allocatable: boolean): RequestedPort {
  if (isMissing(entry) || typeof entry !== 'object' || Array.isArray(entry)) {
    fail(`ports[${i}] must be an object with port, protocol and servicePort`)
  }
  const {port, protocol, servicePort} = entry as Record<string, unknown>
  if (isMissing(port)) {
    if (!allocatable) fail(`ports[${i}].port is missing`)
    // The port is allocated: only the Service port says where it leads.
    if (isMissing(servicePort)) fail(`ports[${i}] has neither port nor servicePort (leaving port out allocates one, but servicePort must say where it leads)`)
    return {protocol: validateProtocol(protocol, i), servicePort: validatePortNumber(servicePort, `ports[${i}].servicePort`)}
  }
  const external = validatePortNumber(port, `ports[${i}].port`)
  return {
    port: external,
    protocol: validateProtocol(protocol, i),
    servicePort: isMissing(servicePort) ? external : validatePortNumber(servicePort, `ports[${i}].servicePort`),
  }
}

function validatePortNumber(value: unknown, path: string): number {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535) return value
  return fail(`${path} ${showValue(value)} must be an integer in ${PORT_RANGE}`)
}

function validateProtocol(value: unknown, i: number): Protocol {
  if (isMissing(value)) return 'tcp'
  const lower = typeof value === 'string' ? value.toLowerCase() : undefined
  if (lower === 'tcp' || lower === 'udp') return lower
  return fail(`ports[${i}].protocol ${showValue(value)} must be tcp or udp`)
}
