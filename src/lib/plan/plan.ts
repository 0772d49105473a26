/** The planner: snapshot + host -> NatModel and one verdict per Mapping. Pure and deterministic. */
import type {MappingResource, PortMapping} from '../mapping/types.js'
import type {Ipv4} from '../net/ipv4.js'
import {planEgress} from './egress.js'
import type {HostInfo, MappingVerdict, NatMapping, Plan, PlanOptions, Snapshot} from './model.js'
import {dedupeByName, sortOldestFirst} from './order.js'
import {serviceIndex, type Candidate, type Resolution, type ResolutionMemo} from './candidates.js'
import {indexPodIPs} from './pods.js'
import {indexEndpoints} from './endpoints.js'
import {invalidVerdict, planHost, programCandidate, resolveMapping, unprogrammedVerdict, type HostPlan} from './program.js'

/** How one Mapping object was planned: what it resolved to, the conflict it lost if any, and the result. */
export interface PlannedMapping {
  resource: MappingResource
  resolution: Resolution
  /** Why a valid candidate lost an endpoint to an older Mapping; absent when it lost none. */
  conflict?: string
  verdict: MappingVerdict
  mapping?: NatMapping
}

/** A whole plan with what it was made of, for a memo to keep. */
export interface FullPlan {
  plan: Plan
  host: HostPlan
  /** One per Mapping kept, in namespace/name order. */
  byName: PlannedMapping[]
  /** The same, oldest first (conflict order). */
  byAge: PlannedMapping[]
}

/** Keeps plans between calls and plans from them (memo.ts's PlanMemo). */
export interface PlanKeeper {
  plan(snapshot: Snapshot, host: HostInfo, options: PlanOptions): Plan
}

/** Computes what this host must program and what each Mapping is told, from nothing but the arguments (`memo` only saves work). */
export function plan(snapshot: Snapshot, host: HostInfo, options: PlanOptions, memo?: PlanKeeper): Plan {
  checkOptions(options)
  return memo ? memo.plan(snapshot, host, options) : planAll(snapshot, host, options).plan
}

/** Plans every Mapping of the snapshot. */
export function planAll(snapshot: Snapshot, host: HostInfo, options: PlanOptions, resolutions?: ResolutionMemo): FullPlan {
  const hostPlan = planHost(host, options)
  const podIPsOf = indexPodIPs(snapshot.endpointSlices)
  const {endpointsOf} = indexEndpoints(snapshot.endpointSlices)
  const services = serviceIndex(snapshot.services)

  // Duplicate namespace/name entries collapse to one (see dedupeByName), so each Mapping gets
  // exactly one verdict whatever the source handed over.
  const byName: PlannedMapping[] = dedupeByName(snapshot.mappings).map((resource) => {
    const resolution = resolveMapping(resource, options, services, resolutions)
    return 'reason' in resolution ? {resource, resolution, verdict: unprogrammedVerdict(resource, resolution)} : {resource, resolution, verdict: undefined!}
  })
  // Oldest first: the oldest Mapping keeps a contested endpoint, and egress hands a shared pod IP to the oldest Mapping.
  const byAge = sortOldestFirst(byName, (planned) => planned.resource)
  const programmed: NatMapping[] = []
  resolveConflicts(byAge, (planned, conflict) => {
    const candidate = planned.resolution as Candidate
    if (conflict !== undefined) {
      planned.conflict = conflict
      planned.verdict = invalidVerdict(planned.resource, conflict)
      return
    }
    const {verdict, mapping} = programCandidate(candidate, hostPlan, {podIPsOf, endpointsOf})
    planned.verdict = verdict
    if (mapping === undefined) return
    planned.mapping = mapping
    programmed.push(mapping)
  })

  return {
    plan: {
      model: {
        mappings: byName.flatMap((planned) => (planned.mapping ? [planned.mapping] : [])),
        interfaces: hostPlan.interfaces,
        egress: options.snat ? planEgress(programmed) : [],
        masquerade: options.masquerade,
        ...(options.masquerade && options.clusterAddress !== undefined ? {masqueradeTo: options.clusterAddress} : {}),
      },
      verdicts: byName.map((planned) => planned.verdict),
      interfaceFaults: hostPlan.interfaceFaults,
    },
    host: hostPlan,
    byName,
    byAge,
  }
}

/** Checks the options a plan cannot be made without. */
export function checkOptions(options: PlanOptions): void {
  if (!Number.isInteger(options.maxPortsPerMapping) || options.maxPortsPerMapping < 1) {
    throw new Error(`--max-ports-per-mapping must be a positive integer, got ${options.maxPortsPerMapping}`)
  }
  if (!Number.isInteger(options.gwOffset) || options.gwOffset === 0) {
    throw new Error(`--gw-offset must be a non-zero integer, got ${options.gwOffset}`)
  }
  if (options.clusterAddress !== undefined && !options.masquerade) {
    throw new Error(`--cluster-address ${options.clusterAddress} replaces the masquerade's source address, so it cannot go with --no-masquerade`)
  }
}

/** An endpoint as one number: the port, negative for UDP; no key text per endpoint. */
export function portKey(port: PortMapping): number {
  return port.protocol === 'udp' ? -port.port : port.port
}

/**
 * Gives each (address, protocol, port) to the oldest Mapping claiming it, over all addresses and
 * not only local ones, so every instance reaches the same verdicts. Only valid Mappings take
 * part: an invalid one never takes an endpoint from anybody. Calls `decide` oldest first.
 */
function resolveConflicts(oldestFirst: readonly PlannedMapping[], decide: (planned: PlannedMapping, conflict: string | undefined) => void): void {
  const owners = new Map<Ipv4, Map<number, Candidate>>()
  const portsOf = (address: Ipv4) => owners.get(address) ?? owners.set(address, new Map<number, Candidate>()).get(address)!
  for (const planned of oldestFirst) {
    if ('reason' in planned.resolution) continue
    const candidate = planned.resolution
    const conflict = conflictOf(candidate, (address, key) => owners.get(address)?.get(key))
    if (conflict === undefined) {
      for (const address of candidate.addresses) {
        const ports = portsOf(address)
        for (const port of candidate.ports) ports.set(portKey(port), candidate)
      }
    }
    decide(planned, conflict)
  }
}

/** The conflict `candidate` loses, given the owner of each endpoint among the Mappings older than it: the first endpoint, by address then port, that is taken. */
export function conflictOf(candidate: Candidate, ownerOf: (address: Ipv4, key: number) => {namespace: string; name: string} | undefined): string | undefined {
  for (const address of candidate.addresses) {
    for (const port of candidate.ports) {
      const owner = ownerOf(address, portKey(port))
      if (owner) return `${port.protocol}/${port.port} on ${address} is already mapped by ${owner.namespace}/${owner.name}`
    }
  }
  return undefined
}
