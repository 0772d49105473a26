/** Writes to the API server: Mapping status through the status subresource, the Go controller's finalizer, and core/v1 Events. */
import {CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig} from '@kubernetes/client-node'
import {MAPPING_GROUP, MAPPING_VERSION, type MappingResource} from '../../mapping/types.js'
import {ADDRESS_POOL_PLURAL} from '../../mapping/pool.js'
import {MAPPING_PLURAL} from './kinds.js'
import {abortOn, timedRequest, type ApiOptions} from './request.js'

/** A JSON merge patch (RFC 7386) of a Mapping: null removes a key. */
export type MergePatch = {[key: string]: unknown}

export interface MappingStatusApi {
  /** Reads the current object (404 when it is gone). */
  get(namespace: string, name: string): Promise<MappingResource>
  /** Merge-patches the status subresource and returns the object as stored. */
  patchStatus(namespace: string, name: string, patch: MergePatch): Promise<MappingResource>
}

/** One JSON patch operation (RFC 6902). */
export type JsonPatchOperation = {op: 'test' | 'remove'; path: string; value?: unknown}

export interface MappingFinalizerApi {
  /** JSON-patches the Mapping's metadata (a failed `test` answers 422, a stale precondition 409). */
  patchMetadata(namespace: string, name: string, operations: JsonPatchOperation[]): Promise<void>
}

export interface EventApi {
  create(namespace: string, event: CoreV1Event): Promise<void>
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)

/** Mapping status reads and merge-patch writes through the API server of `kc`, each ending at the deadline of `api`. */
export function kubeMappingStatusApi(kc: KubeConfig, api: ApiOptions = {}): MappingStatusApi {
  const custom = kc.makeApiClient(CustomObjectsApi)
  const target = {group: MAPPING_GROUP, version: MAPPING_VERSION, plural: MAPPING_PLURAL}
  return {
    get: async (namespace, name) => await timedRequest({kind: 'Mapping', verb: 'get'}, api, (signal) =>
      custom.getNamespacedCustomObject({...target, namespace, name}, abortOn(signal))) as MappingResource,
    patchStatus: async (namespace, name, body) => await timedRequest({kind: 'Mapping', verb: 'patch'}, api, (signal) =>
      custom.patchNamespacedCustomObjectStatus({...target, namespace, name, body}, abortOn(signal, mergePatch))) as MappingResource,
  }
}

/** Mapping metadata JSON patches through the API server of `kc`, each ending at the deadline of `api`. */
export function kubeMappingFinalizerApi(kc: KubeConfig, api: ApiOptions = {}): MappingFinalizerApi {
  const custom = kc.makeApiClient(CustomObjectsApi)
  const target = {group: MAPPING_GROUP, version: MAPPING_VERSION, plural: MAPPING_PLURAL}
  return {
    patchMetadata: async (namespace, name, body) => {
      await timedRequest({kind: 'Mapping', verb: 'patch'}, api, (signal) =>
        custom.patchNamespacedCustomObject({...target, namespace, name, body}, abortOn(signal, jsonPatch)))
    },
  }
}

/** Service status (load-balancer ingress) merge patches through the API server of `kc`, each ending at the deadline of `api`. */
export function kubeServiceStatusApi(kc: KubeConfig, api: ApiOptions = {}): {patchStatus(namespace: string, name: string, patch: MergePatch): Promise<unknown>} {
  const core = kc.makeApiClient(CoreV1Api)
  return {
    patchStatus: async (namespace, name, body) => await timedRequest({kind: 'Service', verb: 'patch'}, api, (signal) =>
      core.patchNamespacedServiceStatus({namespace, name, body}, abortOn(signal, mergePatch))),
  }
}

/** AddressPool status merge patches through the API server of `kc`, each ending at the deadline of `api`. */
export function kubePoolStatusApi(kc: KubeConfig, api: ApiOptions = {}): {patchStatus(name: string, patch: MergePatch): Promise<unknown>} {
  const custom = kc.makeApiClient(CustomObjectsApi)
  return {
    patchStatus: async (name, body) => await timedRequest({kind: 'AddressPool', verb: 'patch'}, api, (signal) =>
      custom.patchClusterCustomObjectStatus({group: MAPPING_GROUP, version: MAPPING_VERSION, plural: ADDRESS_POOL_PLURAL, name, body}, abortOn(signal, mergePatch))),
  }
}

/** Event creation through the API server of `kc`, each ending at the deadline of `api`. */
export function kubeEventApi(kc: KubeConfig, api: ApiOptions = {}): EventApi {
  const core = kc.makeApiClient(CoreV1Api)
  return {
    create: async (namespace, body) => {
      await timedRequest({kind: 'Event', verb: 'create'}, api, (signal) => core.createNamespacedEvent({namespace, body}, abortOn(signal)))
    },
  }
}
