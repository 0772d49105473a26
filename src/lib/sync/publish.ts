/** Tells each Mapping what this instance made of it: status writeback, Events on transitions, and the Go controller's finalizer removed once it holds up a deletion. */
import {hostname} from 'node:os'

import type {KubeConfig} from '@kubernetes/client-node'

import {isServiceExposure} from '../mapping/loadbalancer.js'
import type {ApiOptions} from '../source/kube/request.js'
import {kubeEventApi, kubeMappingFinalizerApi, kubeMappingStatusApi, kubePoolStatusApi, kubeServiceStatusApi, type EventApi, type MappingFinalizerApi, type MappingStatusApi} from '../source/kube/writers.js'
import type {PortRange} from '../mapping/dynamic.js'
import {listServices} from '../source/kube/source.js'
import {AllocationWriter, type AllocationResult} from './allocation.js'
import type {AllocatorLeadership} from './allocator-lease.js'
import {API_WRITES_IN_FLIGHT} from './bounded.js'
import {recordEvents} from './events.js'
import {removeGoFinalizers, type FinalizerResult} from './finalizers.js'
import type {HostLease} from './lease.js'
import {hasStaleKeys, removesStaleKeys, type LiveHosts} from './live-hosts.js'
import {MappingAllocationWriter, type MappingAllocationResult} from './mapping-allocation.js'
import type {SyncReport} from './once.js'
import {ownAddresses, SettledStatuses, writeStatuses, type StatusWriteResult} from './status.js'

export interface PublishResult {
  status: StatusWriteResult
  /** LoadBalancer Service addresses recorded and released, AddressPool statuses; absent without an allocation writer. */
  allocation?: AllocationResult
  /** Addresses and ports recorded in the status of Mappings that ask for them; absent without a writer. */
  mappingAllocation?: MappingAllocationResult
  eventsCreated: number
  finalizers: FinalizerResult
  /** Every status, Event or finalizer write that failed; the sync itself still counts as done. */
  errors: Error[]
}

export interface Publisher {
  /** Writes the report's statuses and Events; once `signal` is aborted, no further write starts. */
  publish(report: SyncReport, now?: Date, signal?: AbortSignal): Promise<PublishResult>
}

/**
 * A publisher writing through the API of `kubeConfig`, as this host (`hostName`), each request ending at
 * the deadline of `api`; with `lease`, status keys of hosts that are gone are told apart (live-hosts.ts).
 */
export function kubePublisher(
  kubeConfig: KubeConfig,
  hostName = hostname(),
  api: ApiOptions = {},
  lease?: Pick<HostLease, 'live' | 'refresh' | 'started'>,
  options: {defaultLoadBalancer?: boolean; dynamicPorts?: PortRange; allocator?: {leadership: AllocatorLeadership; durationSeconds: number}} = {},
): Publisher {
  const events = kubeEventApi(kubeConfig, api)
  const allocator = options.allocator
  const allocation = new AllocationWriter(
    {services: kubeServiceStatusApi(kubeConfig, api), pools: kubePoolStatusApi(kubeConfig, api), events},
    hostName,
    options.defaultLoadBalancer ?? false,
    API_WRITES_IN_FLIGHT,
    allocator && {leadership: allocator.leadership, listServices: () => listServices(kubeConfig, api), maxAgeMs: allocator.durationSeconds * 1000},
  )
  const mappingApi = kubeMappingStatusApi(kubeConfig, api)
  const mappingAllocation = new MappingAllocationWriter(mappingApi, {
    defaultLoadBalancer: options.defaultLoadBalancer ?? false,
    events: {api: events, hostName},
    ...(allocator === undefined ? {} : {leadership: allocator.leadership}),
    ...(options.dynamicPorts === undefined ? {} : {dynamicPorts: options.dynamicPorts}),
  })
  return apiPublisher({...mappingApi, ...kubeMappingFinalizerApi(kubeConfig, api)}, events, hostName, API_WRITES_IN_FLIGHT, lease, allocation, mappingAllocation)
}

/** A publisher over the given APIs, with at most `inFlight` writes of each kind at once. */
export function apiPublisher(
  mappingApi: MappingStatusApi & MappingFinalizerApi,
  eventApi: EventApi,
  hostName: string,
  inFlight = API_WRITES_IN_FLIGHT,
  lease?: Pick<HostLease, 'live' | 'refresh' | 'started'>,
  allocation?: Pick<AllocationWriter, 'write'>,
  mappingAllocation?: Pick<MappingAllocationWriter, 'write'>,
): Publisher {
  const settled = new SettledStatuses()
  return {
    async publish(report, now = new Date(), signal) {
      // Allocations first: a Service waiting for an address waits for nothing else.
      const allocated = allocation && !signal?.aborted ? await allocation.write(report.snapshot, now, report.plan.verdicts) : undefined
      // Before the writeback: a Mapping whose allocation is written now is told, at the latest by the next pass, that it is served.
      const mappingAllocated = mappingAllocation && !signal?.aborted ? await mappingAllocation.write(report.snapshot, now) : undefined
      // LoadBalancer Services planned as exposures have no Mapping status; allocation tells them.
      const mappings = report.snapshot.mappings.filter((mapping) => !isServiceExposure(mapping))
      const live = lease ? await liveHosts(lease, mappings, hostName) : undefined
      const statuses = signal ? abortableStatusApi(mappingApi, signal) : mappingApi
      const status = await writeStatuses(statuses, mappings, report.plan.verdicts, report.host, now, hostName, inFlight, live, settled)
      const events = await recordEvents(signal ? abortableEventApi(eventApi, signal) : eventApi, status.changes, ownAddresses(report.host), hostName, now, inFlight)
      // The pass this report comes from has applied: what it does not program is gone from this host.
      const finalizers = await removeGoFinalizers(signal ? abortableFinalizerApi(mappingApi, signal) : mappingApi, mappings, report.plan.model, inFlight)
      return {
        status,
        ...(allocated ? {allocation: allocated} : {}),
        ...(mappingAllocated ? {mappingAllocation: mappingAllocated} : {}),
        eventsCreated: events.created + (allocated?.eventsCreated ?? 0) + (mappingAllocated?.eventsCreated ?? 0),
        finalizers,
        errors: [...(allocated?.errors ?? []), ...(mappingAllocated?.errors ?? []), ...status.errors, ...events.errors, ...finalizers.errors],
      }
    },
  }
}

/** The live hosts as last read, read again first when this host is about to remove stale keys. */
async function liveHosts(lease: Pick<HostLease, 'live' | 'refresh' | 'started'>, mappings: SyncReport['snapshot']['mappings'], hostName: string): Promise<LiveHosts | undefined> {
  await lease.started()
  const live = lease.live()
  if (live === undefined || !removesStaleKeys(live, hostName) || !hasStaleKeys(mappings, live)) return live
  return await lease.refresh()
}

/** The same writes, but each one asked for after `signal` is aborted fails at once with its reason, without a request. */
function abortableStatusApi(api: MappingStatusApi, signal: AbortSignal): MappingStatusApi {
  return {
    async get(namespace, name) {
      signal.throwIfAborted()
      return await api.get(namespace, name)
    },
    async patchStatus(namespace, name, patch) {
      signal.throwIfAborted()
      return await api.patchStatus(namespace, name, patch)
    },
  }
}

function abortableFinalizerApi(api: MappingFinalizerApi, signal: AbortSignal): MappingFinalizerApi {
  return {
    async patchMetadata(namespace, name, operations) {
      signal.throwIfAborted()
      await api.patchMetadata(namespace, name, operations)
    },
  }
}

function abortableEventApi(api: EventApi, signal: AbortSignal): EventApi {
  return {
    async create(namespace, event) {
      signal.throwIfAborted()
      await api.create(namespace, event)
    },
  }
}
