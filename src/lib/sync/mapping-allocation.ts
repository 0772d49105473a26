/**
 * The allocations of Mappings that ask for an address or a port, recorded in their status.allocated:
 * a merge patch of that one key, written with the resourceVersion it was decided from, so that of
 * two instances deciding at once only the first write lands; the other gets 409 and its next pass
 * follows what the watch brings. The per-host status writeback (status.ts) patches only its own
 * keys (invalid, serviceVIP, configuredAddresses, conditions, observedGeneration), never
 * `allocated`, so neither writer clobbers the other; a write of one makes the other's stale
 * resourceVersion fail with 409, and the writeback then reads again and patches its keys alone.
 */
import {allocateMappings, sameAllocation, type MappingDecision} from '../allocate/mappings.js'
import {allocatedRecord, DEFAULT_DYNAMIC_PORTS, mayAskForAllocation, readAllocated, type Allocated, type PortRange} from '../mapping/dynamic.js'
import {isServiceExposure} from '../mapping/loadbalancer.js'
import {namespaceLabels} from '../mapping/namespace.js'
import {poolConfig} from '../mapping/pool.js'
import {MAPPING_API_VERSION, type MappingResource} from '../mapping/types.js'
import type {Snapshot} from '../plan/model.js'
import {describeApiError, httpStatusOf} from '../source/kube/errors.js'
import type {EventApi, MergePatch} from '../source/kube/writers.js'
import type {AllocatorLeadership} from './allocator-lease.js'
import {API_WRITES_IN_FLIGHT, mapBounded} from './bounded.js'
import {objectEvent} from './events.js'

export interface MappingAllocationApi {
  /** Merge-patches the status subresource; a metadata.resourceVersion in the patch makes a stale write fail with 409. */
  patchStatus(namespace: string, name: string, patch: MergePatch): Promise<unknown>
}

export interface MappingAllocationResult {
  /** Records written: allocations made or changed, and records removed. */
  written: number
  allocated: number
  released: number
  /** Mappings that ask for what cannot be given now. */
  pending: number
  /** Writes refused with 409: another instance (or the user) changed the Mapping first. */
  conflicts: number
  eventsCreated: number
  errors: Error[]
}

export interface MappingAllocationOptions {
  defaultLoadBalancer: boolean
  dynamicPorts?: PortRange
  /** Where an `Allocated` Event goes for each allocation recorded, and the host named as its source. */
  events?: {api: EventApi; hostName: string}
  /** When given, records are written only while this instance holds the allocator Lease; the others follow what is recorded. */
  leadership?: AllocatorLeadership
}

/** The record `decision` wants in status.allocated (null: none), or undefined when the Mapping already holds it. */
function wantedRecord(decision: MappingDecision): Allocated | null | undefined {
  const recorded = readAllocated(decision.mapping.status?.allocated)
  const raw = decision.mapping.status?.allocated
  const wanted = decision.kind === 'hold' ? decision.allocated : decision.kind === 'pending' ? decision.kept ?? null : null
  if (wanted === null) return raw === undefined || raw === null ? undefined : null
  return sameAllocation(recorded, wanted) ? undefined : wanted
}

/** Writes the allocations of the snapshot's Mappings that differ from what their status records. */
export class MappingAllocationWriter {
  constructor(
    private readonly api: MappingAllocationApi,
    private readonly options: MappingAllocationOptions,
    private readonly inFlight = API_WRITES_IN_FLIGHT,
  ) {}

  /** Decides from `snapshot` and writes each record that changed; one Mapping's failure never stops the others. */
  async write(snapshot: Snapshot, now = new Date()): Promise<MappingAllocationResult> {
    const result: MappingAllocationResult = {written: 0, allocated: 0, released: 0, pending: 0, conflicts: 0, eventsCreated: 0, errors: []}
    const mappings = snapshot.mappings.filter((mapping) => !isServiceExposure(mapping))
    // Most clusters have no such Mapping: their passes pay nothing for this.
    if (!mappings.some(mayAskForAllocation)) return result
    if (this.options.leadership !== undefined && !this.options.leadership.holds()) return result
    const decisions = allocateMappings({
      mappings,
      services: snapshot.services,
      pools: poolConfig(snapshot.addressPools ?? []),
      namespaceLabels: namespaceLabels(snapshot.namespaces ?? []),
      defaultLoadBalancer: this.options.defaultLoadBalancer,
      dynamicPorts: this.options.dynamicPorts ?? DEFAULT_DYNAMIC_PORTS,
    })
    const writes: {mapping: MappingResource; record: Allocated | null}[] = []
    for (const decision of decisions) {
      if (decision.kind === 'pending') result.pending++
      const record = wantedRecord(decision)
      if (record !== undefined) writes.push({mapping: decision.mapping, record})
    }
    const outcomes = await mapBounded(writes, this.inFlight, async ({mapping, record}) => await this.writeOne(mapping, record))
    const recorded: {mapping: MappingResource; record: Allocated}[] = []
    for (const [i, outcome] of outcomes.entries()) {
      if (outcome === 'conflict') result.conflicts++
      else if (outcome instanceof Error) result.errors.push(outcome)
      else if (outcome === 'written') {
        result.written++
        const {mapping, record} = writes[i]!
        if (record === null) result.released++
        else recorded.push({mapping, record})
      }
    }
    result.allocated = recorded.length
    const events = this.options.events
    if (events !== undefined) {
      const failed = await mapBounded(recorded, this.inFlight, async ({mapping, record}) => await recordAllocated(events, mapping, record, now))
      for (const error of failed) if (error !== undefined) result.errors.push(error)
      result.eventsCreated = failed.filter((error) => error === undefined).length
    }
    return result
  }

  private async writeOne(mapping: MappingResource, record: Allocated | null): Promise<'written' | 'conflict' | 'gone' | Error> {
    const {namespace, name, resourceVersion} = mapping.metadata
    // Only status.allocated: the merge patch leaves every other status key to the writeback. A key the
    // new record lacks (pool) must be sent as null, or the merge keeps the old one.
    const allocated = record === null ? null : {pool: null, ...allocatedRecord(record)}
    try {
      await this.api.patchStatus(namespace!, name!, {metadata: {resourceVersion}, status: {allocated}})
      return 'written'
    } catch (error) {
      if (httpStatusOf(error) === 409) return 'conflict'
      // Deleted since it was read: nothing to record any more.
      if (httpStatusOf(error) === 404) return 'gone'
      return new Error(`mapping ${namespace}/${name}: writing its allocation: ${describeApiError(error)}`, {cause: error})
    }
  }
}

/** `allocated 198.18.0.17 from AddressPool edge, tcp/30000 to servicePort 80`. */
function allocatedMessage(record: Allocated): string {
  const from = record.pool === undefined ? ` on ${record.addresses.join(', ')}` : ` ${record.addresses.join(', ')} from AddressPool ${record.pool}`
  const ports = record.ports.map((port) => `${port.protocol}/${port.port} to servicePort ${port.servicePort}`)
  return `allocated${from}${ports.length > 0 ? `, ${ports.join(', ')}` : ''}`
}

/** Records a Normal `Allocated` Event on the Mapping; a failure is returned, not thrown, since Events are best effort. */
async function recordAllocated(events: {api: EventApi; hostName: string}, mapping: MappingResource, record: Allocated, now: Date): Promise<Error | undefined> {
  const {namespace, name, uid, resourceVersion} = mapping.metadata
  const event = objectEvent({apiVersion: MAPPING_API_VERSION, kind: 'Mapping', namespace, name, uid, resourceVersion}, {type: 'Normal', reason: 'Allocated', message: allocatedMessage(record)}, events.hostName, now)
  try {
    await events.api.create(namespace!, event)
    return undefined
  } catch (error) {
    return new Error(`mapping ${namespace}/${name}: recording event Allocated: ${describeApiError(error)}`, {cause: error})
  }
}
