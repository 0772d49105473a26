/** Tells each Mapping what this instance made of it: status writeback, then Events on transitions. */
import {hostname} from 'node:os'

import type {KubeConfig} from '@kubernetes/client-node'

import type {ApiOptions} from '../source/kube/request.js'
import {kubeEventApi, kubeMappingStatusApi, type EventApi, type MappingStatusApi} from '../source/kube/writers.js'
import {API_WRITES_IN_FLIGHT} from './bounded.js'
import {recordEvents} from './events.js'
import type {SyncReport} from './once.js'
import {ownAddresses, writeStatuses, type StatusWriteResult} from './status.js'

export interface PublishResult {
  status: StatusWriteResult
  eventsCreated: number
  /** Every status or Event write that failed; the sync itself still counts as done. */
  errors: Error[]
}

export interface Publisher {
  /** Writes the report's statuses and Events; once `signal` is aborted, no further write starts. */
  publish(report: SyncReport, now?: Date, signal?: AbortSignal): Promise<PublishResult>
}

/** A publisher writing through the API of `kubeConfig`, as this host (`hostName`), each request ending at the deadline of `api`. */
export function kubePublisher(kubeConfig: KubeConfig, hostName = hostname(), api: ApiOptions = {}): Publisher {
  return apiPublisher(kubeMappingStatusApi(kubeConfig, api), kubeEventApi(kubeConfig, api), hostName)
}

/** A publisher over the given status and Event APIs, with at most `inFlight` writes of each kind at once. */
export function apiPublisher(statusApi: MappingStatusApi, eventApi: EventApi, hostName: string, inFlight = API_WRITES_IN_FLIGHT): Publisher {
  return {
    async publish(report, now = new Date(), signal) {
      const statuses = signal ? abortableStatusApi(statusApi, signal) : statusApi
      const status = await writeStatuses(statuses, report.snapshot.mappings, report.plan.verdicts, report.host, now, hostName, inFlight)
      const events = await recordEvents(signal ? abortableEventApi(eventApi, signal) : eventApi, status.changes, ownAddresses(report.host), hostName, now, inFlight)
      return {status, eventsCreated: events.created, errors: [...status.errors, ...events.errors]}
    },
  }
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

function abortableEventApi(api: EventApi, signal: AbortSignal): EventApi {
  return {
    async create(namespace, event) {
      signal.throwIfAborted()
      await api.create(namespace, event)
    },
  }
}
