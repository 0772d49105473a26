/**
 * Allocation recorded in the API: the allocator's decisions (allocate/allocate.ts) written to each
 * Service's status.loadBalancer.ingress with the resourceVersion it was decided from, so that of two
 * instances deciding at once only the first write lands; the other gets 409, drops its proposal, and
 * its next pass follows what the watch brings. Events say what was allocated, released, or why a
 * Service waits; each AddressPool's status counts its addresses and says what is wrong with it.
 */
import {isDeepStrictEqual} from 'node:util'
import type {CoreV1Event} from '@kubernetes/client-node'
import {allocate, type Allocation, type Decision} from '../allocate/allocate.js'
import {exposedServiceName, isServiceExposure, WAITING_FOR_ADDRESS} from '../mapping/loadbalancer.js'
import {namespaceLabels} from '../mapping/namespace.js'
import {poolConfig, type AddressPoolResource, type AddressPoolStatus, type PoolConfig} from '../mapping/pool.js'
import type {LoadBalancerIngress, ServiceResource} from '../mapping/types.js'
import type {MappingVerdict, Snapshot} from '../plan/model.js'
import {describeApiError, httpStatusOf} from '../source/kube/errors.js'
import type {EventApi, MergePatch} from '../source/kube/writers.js'
import type {AllocatorLeadership} from './allocator-lease.js'
import {API_WRITES_IN_FLIGHT, mapBounded} from './bounded.js'
import {objectEvent} from './events.js'
import {NewerStatuses} from './newer-statuses.js'

export interface ServiceStatusApi {
  /** Merge-patches the status subresource; a metadata.resourceVersion in the patch makes a stale write fail with 409. */
  patchStatus(namespace: string, name: string, patch: MergePatch): Promise<unknown>
}

export interface PoolStatusApi {
  patchStatus(name: string, patch: MergePatch): Promise<unknown>
}

export interface AllocationApis {
  services: ServiceStatusApi
  pools: PoolStatusApi
  events: EventApi
}

/** With several instances: only the allocator Lease's holder decides, and on taking it over it reads the Services afresh. */
export interface AllocationCoordination {
  leadership: AllocatorLeadership
  /** Every Service as the API has it now (a paged list), so that a new holder does not decide from a cache that lags. */
  listServices(): Promise<ServiceResource[]>
  /** How long a Service the cache has never shown is counted on such a list's word. */
  maxAgeMs: number
}

export interface AllocationResult {
  /** Service statuses written: addresses allocated, ports updated, addresses released. */
  written: number
  allocated: number
  released: number
  /** Services waiting for an address. */
  pending: number
  /** Writes refused with 409: another instance (or the user) changed the Service first. */
  conflicts: number
  poolsWritten: number
  eventsCreated: number
  /** False when another instance holds the allocator Lease: this one wrote no allocation and follows what is recorded. */
  deciding: boolean
  errors: Error[]
}

interface Write {
  service: ServiceResource
  ingress: LoadBalancerIngress[] | null
  event?: {type: 'Normal' | 'Warning'; reason: string; message: string}
}

/** Writes allocations; remembers which pending reasons it already told, so each is one Event, not one per pass. */
export class AllocationWriter {
  private told = new Map<string, string>()
  private readonly newer: NewerStatuses<ServiceResource>
  /** The allocator term whose Services were read afresh; a new term reads them again. */
  private listedTerm = 0

  constructor(
    private readonly apis: AllocationApis,
    private readonly hostName: string,
    private readonly defaultLoadBalancer: boolean,
    private readonly inFlight = API_WRITES_IN_FLIGHT,
    private readonly coordination?: AllocationCoordination,
  ) {
    this.newer = new NewerStatuses<ServiceResource>(coordination?.maxAgeMs ?? 0)
  }

  /**
   * Decides from `snapshot` and writes what differs from what the Services and pools already say;
   * a served Service that `verdicts` (the pass's) show not programmed for another reason than its
   * address (a conflict, a bad port) is told why with an Event.
   */
  async write(snapshot: Snapshot, now: Date, verdicts: readonly MappingVerdict[] = []): Promise<AllocationResult> {
    const result: AllocationResult = {written: 0, allocated: 0, released: 0, pending: 0, conflicts: 0, poolsWritten: 0, eventsCreated: 0, deciding: true, errors: []}
    const services = await this.decidingServices(snapshot.services, now, result)
    if (services === undefined) return await this.follow(snapshot, now, verdicts, result)
    const pools = poolConfig(snapshot.addressPools ?? [])
    const allocation = allocate({
      services,
      mappings: snapshot.mappings.filter((mapping) => !isServiceExposure(mapping)),
      pools,
      defaultLoadBalancer: this.defaultLoadBalancer,
      namespaceLabels: namespaceLabels(snapshot.namespaces ?? []),
    })
    const writes: Write[] = []
    const notices: {service: ServiceResource; event: NonNullable<Write['event']>}[] = []
    const told = new Map<string, string>()
    for (const decision of allocation.decisions) {
      if (decision.kind === 'pending') result.pending++
      const write = serviceWrite(decision)
      if (write !== undefined) writes.push(write)
      // A write releasing the old address tells the reason itself.
      if (decision.kind === 'pending') this.tellOnce(told, decision.service, 'AllocationFailed', decision.reason, write === undefined ? notices : [])
    }
    for (const {service, reason} of refusedExposures(snapshot, verdicts)) this.tellOnce(told, service, 'Invalid', reason, notices)
    for (const {service, address} of allocation.orphaned) {
      this.tellOnce(told, service, 'AddressOrphaned', `${address} is in no AddressPool any more; the Service keeps it until it is deleted or asks for another`, notices)
    }
    this.told = told
    const outcomes = await mapBounded(writes, this.inFlight, (write) => this.writeService(write, now))
    for (const outcome of outcomes) {
      if (outcome === 'conflict') result.conflicts++
      else if (outcome instanceof Error) result.errors.push(outcome)
      else {
        result.written++
        if (outcome?.reason === 'AddressAllocated') result.allocated++
        if (outcome?.reason === 'AddressReleased') result.released++
        if (outcome !== undefined) result.eventsCreated++
      }
    }
    const events = await mapBounded(notices, this.inFlight, ({service, event}) => this.recordEvent(service, event, now))
    for (const error of events) if (error instanceof Error) result.errors.push(error)
    result.eventsCreated += events.filter((error) => error === undefined).length
    const poolWrites = await this.writePools(snapshot.addressPools ?? [], pools, allocation, now)
    result.poolsWritten = poolWrites.written
    result.errors.push(...poolWrites.errors)
    return result
  }

  /**
   * The Services to decide from: the cache's, with what this instance knows to be newer in place; a
   * fresh list of them first when this instance has just taken the allocator Lease. Undefined when
   * another instance decides (or the fresh list failed: the next pass tries again).
   */
  private async decidingServices(cached: readonly ServiceResource[], now: Date, result: AllocationResult): Promise<readonly ServiceResource[] | undefined> {
    const coordination = this.coordination
    if (coordination === undefined) return this.newer.apply(cached, now.getTime())
    if (!coordination.leadership.holds()) return undefined
    const term = coordination.leadership.term()
    if (term !== this.listedTerm) {
      try {
        this.newer.noteListed(await coordination.listServices(), cached, now.getTime())
      } catch (error) {
        result.errors.push(new Error(`listing Services before allocating as the new allocator: ${describeApiError(error)}`, {cause: error}))
        return undefined
      }
      this.listedTerm = term
    }
    return this.newer.apply(cached, now.getTime())
  }

  /** Another instance decides: nothing is allocated, released or counted here; only the plan's refusals are told. */
  private async follow(snapshot: Snapshot, now: Date, verdicts: readonly MappingVerdict[], result: AllocationResult): Promise<AllocationResult> {
    const notices: {service: ServiceResource; event: NonNullable<Write['event']>}[] = []
    const told = new Map<string, string>()
    for (const {service, reason} of refusedExposures(snapshot, verdicts)) this.tellOnce(told, service, 'Invalid', reason, notices)
    this.told = told
    const events = await mapBounded(notices, this.inFlight, ({service, event}) => this.recordEvent(service, event, now))
    for (const error of events) if (error instanceof Error) result.errors.push(error)
    result.eventsCreated += events.filter((error) => error === undefined).length
    return {...result, deciding: false}
  }

  /** Notes an Event to record unless the same one was told at the last round. */
  private tellOnce(told: Map<string, string>, service: ServiceResource, reason: string, message: string, notices: {service: ServiceResource; event: NonNullable<Write['event']>}[]): void {
    const key = `${reason}:${serviceKey(service)}`
    told.set(key, message)
    if (this.told.get(key) === message) return
    notices.push({service, event: {type: 'Warning', reason, message}})
  }

  /** Writes one Service's status; the Event it earned when written, 'conflict' on 409, an Error otherwise. */
  private async writeService(write: Write, now: Date): Promise<Write['event'] | 'conflict' | Error> {
    const {namespace, name, resourceVersion} = write.service.metadata
    try {
      const written = await this.apis.services.patchStatus(namespace!, name!, {metadata: {resourceVersion}, status: {loadBalancer: {ingress: write.ingress}}})
      this.newer.note(withRecorded(write, written), resourceVersion, now.getTime())
    } catch (error) {
      if (httpStatusOf(error) === 409) return 'conflict'
      // Deleted since it was read: nothing to record any more.
      if (httpStatusOf(error) === 404) return undefined
      return new Error(`service ${namespace}/${name}: writing its load-balancer status: ${describeApiError(error)}`, {cause: error})
    }
    if (write.event === undefined) return undefined
    const failed = await this.recordEvent(write.service, write.event, now)
    return failed ?? write.event
  }

  private async recordEvent(service: ServiceResource, event: NonNullable<Write['event']>, now: Date): Promise<Error | undefined> {
    const {namespace, name} = service.metadata
    try {
      await this.apis.events.create(namespace!, serviceEvent(service, event, this.hostName, now))
      return undefined
    } catch (error) {
      return new Error(`service ${namespace}/${name}: recording event ${event.reason}: ${describeApiError(error)}`, {cause: error})
    }
  }

  private async writePools(resources: readonly AddressPoolResource[], pools: PoolConfig, allocation: Allocation, now: Date): Promise<{written: number; errors: Error[]}> {
    const usage = new Map(allocation.pools.map((pool) => [pool.name, pool]))
    const parseErrors = new Map(pools.errors.map((error) => [error.message.replace(/^parsing address pool ([^:]*):.*$/s, '$1'), error.message]))
    const writes = resources.flatMap((resource) => {
      const name = resource.metadata?.name
      if (typeof name !== 'string') return []
      const status = poolStatus(resource.status, usage.get(name), parseErrors.get(name), now)
      return status === undefined ? [] : [{name, status}]
    })
    const outcomes = await mapBounded(writes, this.inFlight, async ({name, status}) => {
      try {
        await this.apis.pools.patchStatus(name, {status})
        return undefined
      } catch (error) {
        return new Error(`address pool ${name}: writing its status: ${describeApiError(error)}`, {cause: error})
      }
    })
    const errors = outcomes.filter((outcome) => outcome !== undefined)
    return {written: outcomes.length - errors.length, errors}
  }
}

/** The Service as just written: the recorded ingress, and the version the API server answered with (when it said). */
function withRecorded(write: Write, written: unknown): ServiceResource {
  const version = (written as {metadata?: {resourceVersion?: unknown}} | undefined)?.metadata?.resourceVersion
  const {status: _old, ...service} = write.service
  return {
    ...service,
    metadata: {...service.metadata, resourceVersion: typeof version === 'string' ? version : undefined},
    ...(write.ingress === null ? {} : {status: {loadBalancer: {ingress: write.ingress}}}),
  }
}

/** The served Services whose exposure the plan refused for another reason than a missing address, with the reason. */
function refusedExposures(snapshot: Snapshot, verdicts: readonly MappingVerdict[]): {service: ServiceResource; reason: string}[] {
  const refused = new Map(verdicts.filter((v) => !v.valid && v.deleting === undefined && v.invalid !== WAITING_FOR_ADDRESS).map((v) => [`${v.namespace}/${v.name}`, v.invalid]))
  if (refused.size === 0) return []
  const services = new Map(snapshot.services.map((service) => [`${service.metadata.namespace}/${service.metadata.name}`, service]))
  const found: {service: ServiceResource; reason: string}[] = []
  for (const exposure of snapshot.mappings) {
    if (!isServiceExposure(exposure)) continue
    const {namespace, name} = exposure.metadata
    const reason = refused.get(`${namespace}/${name}`)
    const service = services.get(`${namespace}/${exposedServiceName(name ?? '')}`)
    if (reason !== undefined && service !== undefined) found.push({service, reason})
  }
  return found
}

function serviceKey(service: ServiceResource): string {
  return service.metadata.uid ?? `${service.metadata.namespace}/${service.metadata.name}`
}

/** The ingress a held address is recorded as: the address, ipMode Proxy, and every port of the Service. */
export function desiredIngress(service: ServiceResource, address: string): LoadBalancerIngress[] {
  const ports = Array.isArray(service.spec?.ports) ? service.spec.ports : []
  return [{ip: address, ipMode: 'Proxy', ports: ports.map((port) => ({port: port.port, protocol: port.protocol ?? 'TCP'}))}]
}

/** The status write a decision needs, or undefined when the Service already says it. */
function serviceWrite(decision: Decision): Write | undefined {
  const {service} = decision
  const current = service.status?.loadBalancer?.ingress ?? []
  if (decision.kind === 'hold') {
    const ingress = desiredIngress(service, decision.address)
    if (sameIngress(current, ingress)) return undefined
    if (!decision.assigned) return {service, ingress}
    const from = decision.pool === undefined ? '' : ` from AddressPool ${decision.pool}`
    return {service, ingress, event: {type: 'Normal', reason: 'AddressAllocated', message: `allocated ${decision.address}${from}`}}
  }
  if (decision.kind === 'release') {
    return {service, ingress: null, event: {type: 'Normal', reason: 'AddressReleased', message: `released ${decision.address}: the Service is no longer a LoadBalancer smartnat serves`}}
  }
  // Pending after holding an address (its request changed): the old address goes back.
  if (current.length === 0) return undefined
  return {service, ingress: null, event: {type: 'Warning', reason: 'AllocationFailed', message: decision.reason}}
}

/**
 * Whether the recorded ingress says what is wanted. An API server older than Kubernetes 1.30 drops
 * ipMode: an entry without it counts as written, or every pass would write every Service again.
 */
function sameIngress(current: readonly LoadBalancerIngress[], wanted: readonly LoadBalancerIngress[]): boolean {
  return current.length === wanted.length && current.every((entry, i) => {
    const {ipMode, ...rest} = wanted[i]!
    return entry.ipMode === undefined ? isDeepStrictEqual(entry, rest) : entry.ipMode === ipMode && isDeepStrictEqual(entry, wanted[i])
  })
}

function serviceEvent(service: ServiceResource, event: NonNullable<Write['event']>, hostName: string, now: Date): CoreV1Event {
  const {namespace, name, uid, resourceVersion} = service.metadata
  return objectEvent({apiVersion: 'v1', kind: 'Service', namespace, name, uid, resourceVersion}, event, hostName, now)
}

type PoolCondition = NonNullable<AddressPoolStatus['conditions']>[number]

/** A pool's status as it should be, or undefined when it already is (transition times kept where nothing changed). */
function poolStatus(current: AddressPoolStatus | undefined, usage: {inUse: number; free: number; overlapsWith: readonly string[]} | undefined, parseError: string | undefined, now: Date): AddressPoolStatus | undefined {
  const time = now.toISOString().replace(/\.\d{3}Z$/, 'Z')
  const conditions: PoolCondition[] = [
    parseError === undefined
      ? {type: 'Valid', status: 'True', reason: 'Parsed', message: 'the pool parsed'}
      : {type: 'Valid', status: 'False', reason: 'Invalid', message: parseError},
    usage === undefined || usage.overlapsWith.length === 0
      ? {type: 'Overlapping', status: 'False', reason: 'NoOverlap', message: 'no other pool lists its addresses'}
      : {type: 'Overlapping', status: 'True', reason: 'Overlap', message: `shares addresses with ${usage.overlapsWith.join(', ')}; those are allocated from neither`},
  ]
  const kept = conditions.map((condition) => {
    const old = current?.conditions?.find((c) => c.type === condition.type)
    const same = old !== undefined && old.status === condition.status && old.reason === condition.reason && old.message === condition.message
    return {...condition, lastTransitionTime: same && old.lastTransitionTime !== undefined ? old.lastTransitionTime : time}
  })
  const status: AddressPoolStatus = {inUse: usage?.inUse ?? 0, free: usage?.free ?? 0, conditions: kept}
  return isDeepStrictEqual({inUse: current?.inUse, free: current?.free, conditions: current?.conditions}, status) ? undefined : status
}
