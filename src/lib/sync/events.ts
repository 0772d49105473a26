/** Kubernetes Events (core/v1) on a Mapping's transitions, as seen by this instance: Invalid, Configured, Removed. */
import type {CoreV1Event} from '@kubernetes/client-node'
import {NOT_RECORDED} from '../allocate/pending.js'
import type {MappingStatus} from '../mapping/types.js'
import {MAPPING_API_VERSION} from '../mapping/types.js'
import {compareIpv4, type Ipv4} from '../net/ipv4.js'
import {describeApiError} from '../source/kube/errors.js'
import type {EventApi} from '../source/kube/writers.js'
import {API_WRITES_IN_FLIGHT, mapBounded} from './bounded.js'
import {eitherOf, type Addresses, type StatusChange} from './status.js'

/** Component named as the source of every Event smartnat records. */
export const EVENT_COMPONENT = 'smartnat'

export interface MappingEvent {
  type: 'Normal' | 'Warning'
  reason: 'Invalid' | 'Configured' | 'Removed'
  message: string
}

/** The Events one status transition deserves; none when nothing that matters changed. */
export function transitionEvents(previous: MappingStatus | undefined, next: MappingStatus, own: Addresses, hostName: string): MappingEvent[] {
  const events: MappingEvent[] = []
  // Waiting one pass for its allocation to be recorded is no fault worth a Warning.
  if (next.invalid !== undefined && next.invalid !== 'no' && next.invalid !== NOT_RECORDED && previous?.invalid !== next.invalid) {
    events.push({type: 'Warning', reason: 'Invalid', message: next.invalid})
  }
  const before = ownKeys(previous, own)
  const after = ownKeys(next, own)
  if (after.length > 0 && after.join() !== before.join()) {
    events.push({type: 'Normal', reason: 'Configured', message: `${hostName} serves ${after.join(', ')}`})
  } else if (after.length === 0 && before.length > 0) {
    events.push({type: 'Normal', reason: 'Removed', message: `${hostName} no longer serves ${before.join(', ')}`})
  }
  return events
}

/** Records the Events of each status change; a failed create is reported, not thrown, since Events are best effort. */
export async function recordEvents(
  api: EventApi,
  changes: StatusChange[],
  own: Set<string>,
  hostName: string,
  now: Date,
  inFlight = API_WRITES_IN_FLIGHT,
): Promise<{created: number; errors: Error[]}> {
  const events = changes.flatMap((change) =>
    transitionEvents(change.previous, change.next, eitherOf(own, change.own), hostName).map((event) => ({change, event})),
  )
  const outcomes = await mapBounded(events, inFlight, async ({change, event}) => {
    try {
      await api.create(change.namespace, eventObject(change, event, hostName, now))
      return undefined
    } catch (error) {
      return new Error(`mapping ${change.namespace}/${change.name}: recording event ${event.reason}: ${describeApiError(error)}`, {cause: error})
    }
  })
  const errors = outcomes.filter((outcome) => outcome !== undefined)
  return {created: outcomes.length - errors.length, errors}
}

function eventObject(change: StatusChange, event: MappingEvent, hostName: string, now: Date): CoreV1Event {
  const {uid, resourceVersion} = change.mapping.metadata
  return objectEvent({apiVersion: MAPPING_API_VERSION, kind: 'Mapping', namespace: change.namespace, name: change.name, uid, resourceVersion}, event, hostName, now)
}

/** The object an Event is about: a Mapping, or a Service smartnat allocates for. */
export interface InvolvedObject {
  apiVersion: string
  kind: string
  namespace?: string
  name?: string
  uid?: string
  resourceVersion?: string
}

/** An Event about `involved`, reported by smartnat on `hostName`, happening once at `now`. */
export function objectEvent(involved: InvolvedObject, event: {type: 'Normal' | 'Warning'; reason: string; message: string}, hostName: string, now: Date): CoreV1Event {
  return {
    // The server appends a random suffix, so two Events of one object in the same instant never collide.
    metadata: {generateName: `${involved.name}.`, namespace: involved.namespace},
    involvedObject: involved,
    type: event.type,
    reason: event.reason,
    message: event.message,
    source: {component: EVENT_COMPONENT, host: hostName},
    reportingComponent: EVENT_COMPONENT,
    reportingInstance: hostName,
    firstTimestamp: now,
    lastTimestamp: now,
    count: 1,
  }
}

// An address kept with a fault is not served: Ready=False says why, and no Event claims otherwise.
function ownKeys(status: MappingStatus | undefined, own: Addresses): string[] {
  return Object.entries(status?.configuredAddresses ?? {})
    .filter(([address, entry]) => own.has(address) && entry?.fault === undefined)
    .map(([address]) => address)
    .sort((a, b) => compareIpv4(a as Ipv4, b as Ipv4))
}
