/** A Mapping resolved into what the planner programs: validated, with its Service's ClusterIP, sorted once. */
import {compareCidr, compareIpv4, type Cidr, type Ipv4} from '../net/ipv4.js'
import {resolveService, type ResolvedServicePort} from '../mapping/service.js'
import type {MappingMode, MappingResource, PortMapping, ServiceResource} from '../mapping/types.js'
import {validateMapping} from '../mapping/validate.js'
import type {PlanOptions} from './model.js'
import {compareText, dedupeByName, namesOf} from './order.js'
import {frozenList, SharedValues} from '../net/shared-values.js'

/** A Mapping that passed validation and whose Service resolved; it still may lose a conflict. Never modified once made. */
export interface Candidate {
  resource: MappingResource
  namespace: string
  name: string
  serviceName: string
  mode: MappingMode
  /** The ClusterIP; absent only for a headless Service in mode direct. */
  serviceVIP?: Ipv4
  /** The Service ports the Mapping leads to, with their names, by protocol then port. */
  servicePorts: ResolvedServicePort[]
  /** Mode direct: seconds a client keeps its endpoint; absent without session affinity. */
  affinitySeconds?: number
  /** The spec's addresses in numeric order. */
  addresses: Ipv4[]
  /** The spec's ports by protocol, then port. */
  ports: PortMapping[]
  /** The spec's allowed sources by network, then prefix length. */
  allowedSources: Cidr[]
}

/** A candidate, or why the Mapping is not one; `deleting` is set for a Mapping being deleted (its deletionTimestamp). */
export type Resolution = Candidate | {reason: string; deleting?: string}

/** Services by namespace, then name. */
export type ServiceIndex = Map<string, Map<string, ServiceResource>>

/** What one Mapping object resolved to, and what that depended on besides the object itself. */
interface Resolved {
  maxPortsPerMapping: number
  /**
   * The name its Service was looked up by in the Mapping's namespace (undefined when validation
   * failed first), and what was found there. The Mapping's own string: an object per Mapping naming
   * the namespace too took 0.4 MB at 10,000.
   */
  serviceName: string | undefined
  service: ServiceResource | undefined
  resolution: Resolution
}

/**
 * Resolutions that plan() may reuse while a Mapping and its Service are the very same objects, for a
 * caller that plans again and again (the watch loop): a pass after one change then resolves one
 * Mapping instead of all. Objects are taken as immutable, as every source treats them: a changed
 * object is replaced by a new one, never edited. Reuse gives the same plan as resolving afresh.
 */
export class ResolutionMemo {
  readonly resolved = new WeakMap<MappingResource, Resolved>()
}

/** Indexes Services by namespace, then name (duplicates collapse as in dedupeByName). */
export function serviceIndex(services: readonly ServiceResource[]): ServiceIndex {
  const index: ServiceIndex = new Map()
  for (const service of dedupeByName(services)) {
    const {namespace, name} = namesOf(service)
    const names = index.get(namespace) ?? new Map<string, ServiceResource>()
    index.set(namespace, names)
    names.set(name, service)
  }
  return index
}

/** Validates `resource` and resolves its Service, or says why it cannot be programmed; reuses `memo` where it can. */
export function resolveCandidate(resource: MappingResource, options: PlanOptions, services: ServiceIndex, memo?: ResolutionMemo): Resolution {
  const cached = memo?.resolved.get(resource)
  if (
    cached !== undefined &&
    cached.maxPortsPerMapping === options.maxPortsPerMapping &&
    (cached.serviceName === undefined ? undefined : services.get(resource.metadata.namespace!)?.get(cached.serviceName)) === cached.service
  ) {
    return cached.resolution
  }
  const resolved = resolve(resource, options, services)
  memo?.resolved.set(resource, resolved)
  return resolved.resolution
}

function resolve(resource: MappingResource, options: PlanOptions, services: ServiceIndex): Resolved {
  const {maxPortsPerMapping} = options
  const validation = validateMapping(resource, options)
  if (!validation.ok) return {maxPortsPerMapping, serviceName: undefined, service: undefined, resolution: {reason: validation.reason}}
  const {spec} = validation
  // validateMapping guarantees both names are present and well formed.
  const namespace = resource.metadata.namespace!
  const name = resource.metadata.name!
  // Same namespace only: a Mapping can never reach a Service of another namespace.
  const service = services.get(namespace)?.get(spec.serviceName)
  const found = resolveService(namespace, spec, service)
  const resolution: Resolution = found.ok
    ? {
        resource,
        namespace,
        name,
        serviceName: spec.serviceName,
        mode: spec.mode,
        ...(found.serviceVIP ? {serviceVIP: found.serviceVIP} : {}),
        servicePorts: SERVICE_PORTS.share(found.ports.sort((a, b) => compareText(a.protocol, b.protocol) || a.servicePort - b.servicePort), frozenList),
        ...(found.affinitySeconds === undefined ? {} : {affinitySeconds: found.affinitySeconds}),
        // validateMapping made these lists for this resolution alone: sorting them in place copies nothing.
        addresses: ADDRESSES.share(spec.addresses.sort(compareIpv4), frozenList),
        ports: PORTS.share(spec.ports.sort(comparePorts), frozenList),
        allowedSources: SOURCES.share(spec.allowedSources.sort(compareCidr), frozenList),
      }
    : {reason: found.reason}
  return {maxPortsPerMapping, serviceName: spec.serviceName, service, resolution}
}

/** Most Mappings list ports, addresses or sources other Mappings list too: one copy of each list for all their candidates. */
const PORTS = new SharedValues({limit: 4096})
const SERVICE_PORTS = new SharedValues({limit: 4096})
const ADDRESSES = new SharedValues({limit: 4096})
const SOURCES = new SharedValues({limit: 4096})

function comparePorts(a: {protocol: string; port: number}, b: {protocol: string; port: number}): number {
  return compareText(a.protocol, b.protocol) || a.port - b.port
}
