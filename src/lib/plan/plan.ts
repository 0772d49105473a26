/** The planner: snapshot + host -> NatModel and one verdict per Mapping. Pure and deterministic. */
import {compareIpv4, type Ipv4} from '../net/ipv4.js'
import type {MappingResource, PortMapping} from '../mapping/types.js'
import {planEgress} from './egress.js'
import {planInterfaces} from './interfaces.js'
import type {HostInfo, MappingVerdict, NatEndpoint, NatGroup, NatMapping, Plan, PlanOptions, Snapshot} from './model.js'
import {compareText, dedupeByName, namesOf, sortOldestFirst} from './order.js'
import {resolveCandidate, serviceIndex, type Candidate, type PlanMemo} from './candidates.js'
import {indexPodIPs} from './pods.js'
import {indexEndpoints, type EndpointLookup} from './endpoints.js'

/** A candidate with its position in namespace/name order, where its verdict and NatMapping go. */
interface Ranked {
  candidate: Candidate
  rank: number
}

/** Computes what this host must program and what each Mapping is told, from nothing but the arguments (`memo` only saves work). */
export function plan(snapshot: Snapshot, host: HostInfo, options: PlanOptions, memo?: PlanMemo): Plan {
  checkOptions(options)
  const {interfaces, faults: interfaceFaults} = planInterfaces(host, options)
  const faultOf = new Map(interfaceFaults.map((fault) => [fault.interface, fault.reason]))
  const localInterface = localAddressIndex(host)
  const podIPsOf = indexPodIPs(snapshot.endpointSlices)
  const {endpointsOf} = indexEndpoints(snapshot.endpointSlices)
  const services = serviceIndex(snapshot.services)

  // Duplicate namespace/name entries collapse to one (see dedupeByName), so each Mapping gets
  // exactly one verdict whatever the source handed over.
  // Both lists are filled by rank, which puts them in namespace/name order without sorting.
  const resources = dedupeByName(snapshot.mappings)
  const verdicts: MappingVerdict[] = new Array<MappingVerdict>(resources.length)
  const byName: NatMapping[] = new Array<NatMapping>(resources.length)
  const candidates: Ranked[] = []
  resources.forEach((resource, rank) => {
    const deleting = resource.metadata?.deletionTimestamp
    // Deleted while finalizers remain: no longer served, and no longer a party to conflicts, as the Go controller did.
    if (typeof deleting === 'string') {
      verdicts[rank] = deletingVerdict(resource, deleting)
      return
    }
    const resolution = resolveCandidate(resource, options, services, memo)
    if ('reason' in resolution) verdicts[rank] = invalidVerdict(resource, resolution.reason)
    else candidates.push({candidate: resolution, rank})
  })

  // Kept oldest first: egress hands a shared pod IP to the oldest Mapping.
  const programmed: NatMapping[] = []
  for (const {candidate, rank, conflict} of resolveConflicts(candidates)) {
    if (conflict) {
      verdicts[rank] = invalidVerdict(candidate.resource, conflict)
      continue
    }
    const {namespace, name, serviceName, serviceVIP, addresses, ports, allowedSources} = candidate
    const groups = candidate.mode === 'direct' ? directGroups(candidate, endpointsOf) : undefined
    const podIPs = groups ? groupPodIPs(groups) : podIPsOf(namespace, serviceName)
    const local: {address: Ipv4; interface: string}[] = []
    const notLocalAddresses: Ipv4[] = []
    const configuredAddresses: Record<string, {podIPs: Ipv4[]}> = {}
    const faults: Record<string, string> = {}
    for (const address of addresses) {
      const iface = localInterface.get(address)
      if (iface === undefined) {
        notLocalAddresses.push(address)
        continue
      }
      const fault = faultOf.get(iface)
      if (fault !== undefined) {
        faults[address] = fault
        continue
      }
      local.push({address, interface: iface})
      configuredAddresses[address] = {podIPs: [...podIPs]}
    }
    const faulted = Object.keys(faults).length > 0 ? {faults} : {}
    const unserved = groups ? unservedPorts(ports, groups, candidate.resource) : []
    verdicts[rank] = verdict(candidate.resource, {
      valid: true,
      invalid: 'no',
      ...(serviceVIP ? {serviceVIP} : {}),
      configuredAddresses,
      notLocalAddresses,
      ...(unserved.length > 0 ? {unservedPorts: unserved} : {}),
      ...faulted,
    })
    if (local.length === 0) continue
    const mapping: NatMapping = {
      namespace,
      name,
      addresses: local,
      allowedSources,
      ...(serviceVIP ? {serviceVIP} : {}),
      podIPs,
      endpoints: groups ? directEndpoints(local, ports, groups, candidate.resource) : natEndpoints(local, ports, serviceVIP!),
      ...(groups ? {groups} : {}),
    }
    programmed.push(mapping)
    byName[rank] = mapping
  }

  return {
    model: {
      mappings: byName.filter((mapping) => mapping !== undefined),
      interfaces,
      egress: options.snat ? planEgress(programmed) : [],
      masquerade: options.masquerade,
    },
    verdicts,
    interfaceFaults,
  }
}

function checkOptions(options: PlanOptions): void {
  if (!Number.isInteger(options.maxPortsPerMapping) || options.maxPortsPerMapping < 1) {
    throw new Error(`--max-ports-per-mapping must be a positive integer, got ${options.maxPortsPerMapping}`)
  }
  if (!Number.isInteger(options.gwOffset) || options.gwOffset === 0) {
    throw new Error(`--gw-offset must be a non-zero integer, got ${options.gwOffset}`)
  }
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

/**
 * Gives each (address, protocol, port) to the oldest Mapping claiming it, over all addresses and
 * not only local ones, so every instance reaches the same verdicts. Only valid Mappings take
 * part: an invalid one never takes an endpoint from anybody. Yields candidates oldest first.
 */
function resolveConflicts(candidates: Ranked[]): (Ranked & {conflict?: string})[] {
  // By address, then protocol and port as one number (udp negative): no key text per endpoint.
  const owners = new Map<Ipv4, Map<number, Candidate>>()
  const portsOf = (address: Ipv4) => owners.get(address) ?? owners.set(address, new Map<number, Candidate>()).get(address)!
  const portKey = (port: PortMapping) => (port.protocol === 'udp' ? -port.port : port.port)
  return sortOldestFirst(candidates, (c) => c.candidate.resource).map((ranked) => {
    const {candidate} = ranked
    for (const address of candidate.addresses) {
      const taken = owners.get(address)
      const port = taken && candidate.ports.find((p) => taken.has(portKey(p)))
      if (port) {
        const owner = taken.get(portKey(port))!
        return {...ranked, conflict: `${port.protocol}/${port.port} on ${address} is already mapped by ${owner.namespace}/${owner.name}`}
      }
    }
    for (const address of candidate.addresses) {
      const ports = portsOf(address)
      for (const port of candidate.ports) ports.set(portKey(port), candidate)
    }
    return ranked
  })
}

function natEndpoints(local: readonly {address: Ipv4}[], ports: readonly PortMapping[], serviceVIP: Ipv4): NatEndpoint[] {
  const endpoints: NatEndpoint[] = []
  for (const {address} of local) {
    for (const p of ports) endpoints.push({address, protocol: p.protocol, port: p.port, targetIP: serviceVIP, targetPort: p.servicePort})
  }
  return endpoints
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
  return endpoints
}

function unservedPorts(ports: readonly PortMapping[], groups: readonly NatGroup[], resource: MappingResource): {protocol: PortMapping['protocol']; port: number}[] {
  return ports.filter((p) => groupOf(groups, p, resource).members.length === 0).map(({protocol, port}) => ({protocol, port}))
}

/** A verdict for `resource`, with its generation when it has one. */
function verdict(resource: MappingResource, rest: Omit<MappingVerdict, 'namespace' | 'name' | 'generation'>): MappingVerdict {
  const {namespace, name} = namesOf(resource)
  const generation = resource.metadata?.generation
  return typeof generation === 'number' ? {namespace, name, generation, ...rest} : {namespace, name, ...rest}
}

function deletingVerdict(resource: MappingResource, since: string): MappingVerdict {
  return {...invalidVerdict(resource, `being deleted since ${since}; no longer served`), deleting: since}
}

function invalidVerdict(resource: MappingResource, reason: string): MappingVerdict {
  return verdict(resource, {valid: false, invalid: reason, configuredAddresses: {}, notLocalAddresses: []})
}
