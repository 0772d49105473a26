/** What one Mapping that won its endpoints becomes on this host: its verdict and, when some address is local, its NatMapping. */
import {compareIpv4, type Ipv4} from '../net/ipv4.js'
import type {MappingResource, PortMapping} from '../mapping/types.js'
import {resolveCandidate, type Candidate, type Resolution, type ResolutionMemo, type ServiceIndex} from './candidates.js'
import type {EndpointLookup} from './endpoints.js'
import type {HostInfo, InterfaceFault, MappingVerdict, NatEndpoint, NatGroup, NatInterface, NatMapping, PlanOptions} from './model.js'
import {compareText, namesOf} from './order.js'
import type {PodIPLookup} from './pods.js'
import {planInterfaces} from './interfaces.js'
import {fitted} from '../net/fitted.js'

/** What the host contributes to every Mapping's plan. */
export interface HostPlan {
  interfaces: NatInterface[]
  interfaceFaults: InterfaceFault[]
  /** Why an interface cannot be served, by interface name. */
  faultOf: Map<string, string>
  /** The external interface each local address is on. */
  localInterface: Map<Ipv4, string>
  /**
   * Each local address with its interface, alone in a list: one list shared by every NatMapping on
   * that address only (most Mappings), instead of a list and an object of its own each.
   */
  onlyAt: Map<Ipv4, NatMapping['addresses']>
}

/** Where a Mapping's pods are looked up. */
export interface PodLookups {
  podIPsOf: PodIPLookup
  endpointsOf: EndpointLookup
}

/** A Mapping's verdict, and its NatMapping when it has a local address to program. */
export interface Programmed {
  verdict: MappingVerdict
  mapping?: NatMapping
}

/** Reads from the host what every Mapping's plan needs. */
export function planHost(host: HostInfo, options: Pick<PlanOptions, 'gwOffset' | 'defaultGwInterface'>): HostPlan {
  const {interfaces, faults: interfaceFaults} = planInterfaces(host, options)
  const localInterface = localAddressIndex(host)
  const onlyAt = new Map([...localInterface].map(([address, iface]) => [address, [{address, interface: iface}]]))
  return {interfaces, interfaceFaults, faultOf: new Map(interfaceFaults.map((fault) => [fault.interface, fault.reason])), localInterface, onlyAt}
}

// When an address sits on several external interfaces, the first by name carries its replies.
function localAddressIndex(host: HostInfo): Map<Ipv4, string> {
  const index = new Map<Ipv4, string>()
  const byName = [...host.interfaces].sort((a, b) => compareText(a.name, b.name))
  for (const iface of byName) {
    for (const {address} of iface.addresses) if (!index.has(address)) index.set(address, iface.name)
  }
  return index
}

/** Programs a candidate that lost no conflict: its local addresses, endpoints and groups, and its verdict. */
export function programCandidate(candidate: Candidate, host: HostPlan, pods: PodLookups): Programmed {
  const {namespace, name, serviceName, serviceVIP, addresses, ports, allowedSources} = candidate
  const groups = candidate.mode === 'direct' ? directGroups(candidate, pods.endpointsOf) : undefined
  const podIPs = groups ? groupPodIPs(groups) : pods.podIPsOf(namespace, serviceName)
  const local: NatMapping['addresses'] = []
  const notLocalAddresses: Ipv4[] = []
  const configuredAddresses: Record<string, {podIPs: Ipv4[]}> = {}
  const faults: Record<string, string> = {}
  for (const address of addresses) {
    const iface = host.localInterface.get(address)
    if (iface === undefined) {
      notLocalAddresses.push(address)
      continue
    }
    const fault = host.faultOf.get(iface)
    if (fault !== undefined) {
      faults[address] = fault
      continue
    }
    local.push(host.onlyAt.get(address)![0]!)
    // The NatMapping's own list: nothing changes a plan's lists once made.
    configuredAddresses[address] = {podIPs}
  }
  const faulted = Object.keys(faults).length > 0 ? {faults} : {}
  const unserved = groups ? unservedPorts(ports, groups, candidate.resource) : []
  const verdict = verdictOf(candidate.resource, {
    valid: true,
    invalid: 'no',
    ...(serviceVIP ? {serviceVIP} : {}),
    configuredAddresses,
    notLocalAddresses: notLocalAddresses.length === 0 ? NONE : notLocalAddresses,
    ...(unserved.length > 0 ? {unservedPorts: unserved} : {}),
    ...faulted,
  })
  if (local.length === 0) return {verdict}
  const mapping: NatMapping = {
    namespace,
    name,
    addresses: local.length === 1 ? host.onlyAt.get(local[0]!.address)! : fitted(local),
    allowedSources,
    ...(serviceVIP ? {serviceVIP} : {}),
    podIPs,
    endpoints: groups ? directEndpoints(local, ports, groups, candidate.resource) : natEndpoints(local, ports, serviceVIP!),
    ...(groups ? {groups} : {}),
  }
  return {verdict, mapping}
}

/**
 * What a Mapping resolves to. One being deleted (finalizers keep it in the API) is not served and
 * contests no endpoint, as the Go controller did.
 */
export function resolveMapping(resource: MappingResource, options: PlanOptions, services: ServiceIndex, memo?: ResolutionMemo): Resolution {
  const deleting = resource.metadata?.deletionTimestamp
  if (typeof deleting === 'string') return {reason: `being deleted since ${deleting}; no longer served`, deleting}
  return resolveCandidate(resource, options, services, memo)
}

/** The verdict of a Mapping that resolved to no candidate. */
export function unprogrammedVerdict(resource: MappingResource, resolution: {reason: string; deleting?: string}): MappingVerdict {
  const verdict = invalidVerdict(resource, resolution.reason)
  return resolution.deleting === undefined ? verdict : {...verdict, deleting: resolution.deleting}
}

/** The verdict of a Mapping that cannot be programmed, and why. */
export function invalidVerdict(resource: MappingResource, reason: string): MappingVerdict {
  return verdictOf(resource, {valid: false, invalid: reason, configuredAddresses: {}, notLocalAddresses: NONE})
}

/** The empty address list of every verdict that has none: nothing changes a plan's lists once made. */
const NONE: Ipv4[] = []

function natEndpoints(local: readonly {address: Ipv4}[], ports: readonly PortMapping[], serviceVIP: Ipv4): NatEndpoint[] {
  const endpoints: NatEndpoint[] = []
  for (const {address} of local) {
    for (const p of ports) endpoints.push({address, protocol: p.protocol, port: p.port, targetIP: serviceVIP, targetPort: p.servicePort})
  }
  return fitted(endpoints)
}

/** One group per Service port of a direct-mode Mapping, by protocol then Service port. */
function directGroups(candidate: Candidate, endpointsOf: EndpointLookup): NatGroup[] {
  const {namespace, name, serviceName, affinitySeconds} = candidate
  return candidate.servicePorts.map(({protocol, servicePort, name: portName}) => {
    const {members, terminating} = endpointsOf(namespace, serviceName, portName, protocol)
    const group: NatGroup = {id: `${namespace}/${name} ${protocol}/${servicePort}`, members, terminating}
    if (affinitySeconds !== undefined) group.affinitySeconds = affinitySeconds
    return group
  })
}

function groupPodIPs(groups: readonly NatGroup[]): Ipv4[] {
  return [...new Set(groups.flatMap((g) => g.members.map((m) => m.ip)))].sort(compareIpv4)
}

function groupOf(groups: readonly NatGroup[], port: PortMapping, resource: MappingResource): NatGroup {
  const {namespace, name} = namesOf(resource)
  const group = groups.find((g) => g.id === `${namespace}/${name} ${port.protocol}/${port.servicePort}`)
  if (!group) throw new Error(`mapping ${namespace}/${name}: no group for ${port.protocol} Service port ${port.servicePort}`)
  return group
}

function directEndpoints(local: readonly {address: Ipv4}[], ports: readonly PortMapping[], groups: readonly NatGroup[], resource: MappingResource): NatEndpoint[] {
  const endpoints: NatEndpoint[] = []
  for (const {address} of local) {
    for (const p of ports) endpoints.push({address, protocol: p.protocol, port: p.port, group: groupOf(groups, p, resource)})
  }
  return fitted(endpoints)
}

function unservedPorts(ports: readonly PortMapping[], groups: readonly NatGroup[], resource: MappingResource): {protocol: PortMapping['protocol']; port: number}[] {
  return ports.filter((p) => groupOf(groups, p, resource).members.length === 0).map(({protocol, port}) => ({protocol, port}))
}

/** A verdict for `resource`, with its generation when it has one. */
function verdictOf(resource: MappingResource, rest: Omit<MappingVerdict, 'namespace' | 'name' | 'generation'>): MappingVerdict {
  const {namespace, name} = namesOf(resource)
  const generation = resource.metadata?.generation
  return typeof generation === 'number' ? {namespace, name, generation, ...rest} : {namespace, name, ...rest}
}
