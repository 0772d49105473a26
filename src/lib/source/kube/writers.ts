/** Writes to the API server: Mapping status through the status subresource, and core/v1 Events. */
import {CoreV1Api, CustomObjectsApi, PatchStrategy, setHeaderOptions, type CoreV1Event, type KubeConfig} from '@kubernetes/client-node'
import {MAPPING_GROUP, MAPPING_VERSION, type MappingResource} from '../../mapping/types.js'
import {MAPPING_PLURAL} from './kinds.js'

/** A JSON merge patch (RFC 7386) of a Mapping: null removes a key. */
export type MergePatch = {[key: string]: unknown}

export interface MappingStatusApi {
  /** Reads the current object (404 when it is gone). */
  get(namespace: string, name: string): Promise<MappingResource>
  /** Merge-patches the status subresource and returns the object as stored. */
  patchStatus(namespace: string, name: string, patch: MergePatch): Promise<MappingResource>
}

export interface EventApi {
  create(namespace: string, event: CoreV1Event): Promise<void>
}

const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

/** Mapping status reads and merge-patch writes through the API server of `kc`. */
export function kubeMappingStatusApi(kc: KubeConfig): MappingStatusApi {
  const custom = kc.makeApiClient(CustomObjectsApi)
  const target = {group: MAPPING_GROUP, version: MAPPING_VERSION, plural: MAPPING_PLURAL}
  return {
    get: async (namespace, name) => await custom.getNamespacedCustomObject({...target, namespace, name}) as MappingResource,
    patchStatus: async (namespace, name, body) =>
      await custom.patchNamespacedCustomObjectStatus({...target, namespace, name, body}, mergePatch) as MappingResource,
  }
}

/** Event creation through the API server of `kc`. */
export function kubeEventApi(kc: KubeConfig): EventApi {
  const core = kc.makeApiClient(CoreV1Api)
  return {
    create: async (namespace, body) => {
      await core.createNamespacedEvent({namespace, body})
    },
  }
}
