/** coordination.k8s.io/v1 Leases, through the API server, each request ending at its deadline. */
import {CoordinationV1Api, V1MicroTime, type KubeConfig, type V1Lease} from '@kubernetes/client-node'
import {abortOn, timedRequest, type ApiOptions} from './request.js'

export {DEFAULT_LEASE_DURATION_SECONDS, DEFAULT_LEASE_NAMESPACE, type LeaseSettings} from './lease-settings.js'

export interface LeaseApi {
  /** Reads one Lease (404 when there is none). */
  get(namespace: string, name: string): Promise<V1Lease>
  create(namespace: string, lease: V1Lease): Promise<V1Lease>
  /** Replaces a Lease; its metadata.resourceVersion makes the write conditional (409 when it changed). */
  replace(namespace: string, name: string, lease: V1Lease): Promise<V1Lease>
  list(namespace: string, labelSelector: string): Promise<V1Lease[]>
}

/** A Lease's times must be MicroTime (six fractional digits), which the API server insists on. */
export function microTime(at: Date): V1MicroTime {
  return new V1MicroTime(at.getTime())
}

/** Leases through the API server of `kc`. */
export function kubeLeaseApi(kc: KubeConfig, api: ApiOptions = {}): LeaseApi {
  const coordination = kc.makeApiClient(CoordinationV1Api)
  return {
    get: async (namespace, name) =>
      await timedRequest({kind: 'Lease', verb: 'get'}, api, (signal) => coordination.readNamespacedLease({namespace, name}, abortOn(signal))),
    create: async (namespace, body) =>
      await timedRequest({kind: 'Lease', verb: 'create'}, api, (signal) => coordination.createNamespacedLease({namespace, body}, abortOn(signal))),
    replace: async (namespace, name, body) =>
      await timedRequest({kind: 'Lease', verb: 'update'}, api, (signal) => coordination.replaceNamespacedLease({namespace, name, body}, abortOn(signal))),
    list: async (namespace, labelSelector) =>
      (await timedRequest({kind: 'Lease', verb: 'list'}, api, (signal) => coordination.listNamespacedLease({namespace, labelSelector}, abortOn(signal)))).items,
  }
}
