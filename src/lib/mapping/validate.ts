/** Validation of a Mapping's metadata and spec, with the defaults of the original product applied. */
import {parseCidr, parseIpv4, type Cidr, type Ipv4} from '../net/ipv4.js'
import {exposedServiceName, isServiceExposure, WAITING_FOR_ADDRESS} from './loadbalancer.js'
import {isDns1035Label, isDns1123Label, isDns1123Subdomain, showValue} from './names.js'
import type {MappingMode, MappingResource, PortMapping, Protocol, ValidMappingSpec} from './types.js'

export interface ValidateOptions {
  /** Largest number of ports a single Mapping may list (`--max-ports-per-mapping`). */
  maxPortsPerMapping: number
}

export type MappingValidation = {ok: true; spec: ValidMappingSpec} | {ok: false; reason: string}

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

/** Validates a Mapping and applies defaults without touching the input; the first error wins. */
export function validateMapping(m: MappingResource, options: ValidateOptions): MappingValidation {
  try {
    checkMetadata(m)
    const spec = m.spec
    if (isMissing(spec) || typeof spec !== 'object') fail('spec is missing')
    const exposure = isServiceExposure(m)
    if (exposure && Array.isArray(spec.addresses) && spec.addresses.length === 0) fail(WAITING_FOR_ADDRESS)
    return {
      ok: true,
      spec: {
        addresses: validateAddresses(spec.addresses),
        allowedSources: validateAllowedSources(spec.allowedSources, exposure ? 'loadBalancerSourceRanges' : 'allowedSources'),
        serviceName: validateServiceName(spec.serviceName),
        mode: validateMode(spec.mode),
        ports: validatePorts(spec.ports, options.maxPortsPerMapping),
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

function validateAddresses(value: unknown): Ipv4[] {
  if (isMissing(value)) fail('addresses is missing')
  if (!Array.isArray(value)) fail('addresses must be a list of IPv4 addresses')
  if (value.length === 0) fail('addresses is empty')
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
  return sources
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

function validatePorts(value: unknown, maxPorts: number): PortMapping[] {
  if (isMissing(value)) fail('ports is missing')
  if (!Array.isArray(value)) fail('ports must be a list')
  if (value.length === 0) fail('ports is empty')
  if (value.length > maxPorts) {
    fail(`ports lists ${value.length} entries, more than the limit of ${maxPorts} (raise it with --max-ports-per-mapping)`)
  }
  const seen = new Map<string, number>()
  return value.map((entry: unknown, i) => {
    const port = validatePort(entry, i)
    const key = `${port.protocol}/${port.port}`
    const first = seen.get(key)
    if (first !== undefined) fail(`ports[${i}] ${key} is listed twice (also ports[${first}])`)
    seen.set(key, i)
    return port
  })
}

function validatePort(entry: unknown, i: number): PortMapping {
  if (isMissing(entry) || typeof entry !== 'object' || Array.isArray(entry)) {
    fail(`ports[${i}] must be an object with port, protocol and servicePort`)
  }
  const {port, protocol, servicePort} = entry as Record<string, unknown>
  if (isMissing(port)) fail(`ports[${i}].port is missing`)
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
