/** The kinds smartnat reads from the API server, each with its all-namespaces list (one page) and watch path. */
import {CoreV1Api, CustomObjectsApi, DiscoveryV1Api, type KubeConfig} from '@kubernetes/client-node'
import {ADDRESS_POOL_PLURAL} from '../../mapping/pool.js'
import {MAPPING_API_VERSION, MAPPING_GROUP, MAPPING_VERSION} from '../../mapping/types.js'
import {abortOn, timedRequest, type ApiOptions} from './request.js'

export type KindName = 'Mapping' | 'Service' | 'EndpointSlice' | 'AddressPool' | 'Namespace'

/** An object as it comes over the wire: plain JSON with string timestamps. */
export interface WireObject {
  apiVersion?: string
  kind?: string
  metadata: {name?: string; namespace?: string; uid?: string; resourceVersion?: string; [field: string]: unknown}
  [field: string]: unknown
}

/** One page of a list: its items, the list's resourceVersion and the token for the next page, if any. */
export interface ListPage {
  items: WireObject[]
  resourceVersion: string
  continue?: string
}

export type PageRequest = {limit?: number; continue?: string}

export interface WatchedKind {
  name: KindName
  apiVersion: string
  /** The all-namespaces collection, which is also where watches go. */
  path: string
  listPage(request: PageRequest): Promise<ListPage>
  /** A kind whose CRD may not be installed: its 404 means "none", not a failure. */
  optional?: boolean
}

export const MAPPING_PLURAL = 'mappings'

/** The watched kinds, in the order a Snapshot lists them; each page request ends at the deadline of `api`. */
export function watchedKinds(kc: KubeConfig, api: ApiOptions = {}): WatchedKind[] {
  const custom = kc.makeApiClient(CustomObjectsApi)
  const core = kc.makeApiClient(CoreV1Api)
  const discovery = kc.makeApiClient(DiscoveryV1Api)
  const list = async (kind: KindName, send: (signal: AbortSignal) => Promise<unknown>) => wirePage(await timedRequest({kind, verb: 'list'}, api, send))
  return [
    {
      name: 'Mapping',
      apiVersion: MAPPING_API_VERSION,
      path: `/apis/${MAPPING_GROUP}/${MAPPING_VERSION}/${MAPPING_PLURAL}`,
      // Custom objects come back as plain JSON already.
      listPage: (page) => list('Mapping', (signal) => custom.listCustomObjectForAllNamespaces({
        group: MAPPING_GROUP, version: MAPPING_VERSION, plural: MAPPING_PLURAL, limit: page.limit, _continue: page.continue,
      }, abortOn(signal))),
    },
    {
      name: 'Service',
      apiVersion: 'v1',
      path: '/api/v1/services',
      listPage: (page) => list('Service', (signal) => core.listServiceForAllNamespaces({limit: page.limit, _continue: page.continue}, abortOn(signal))),
    },
    {
      name: 'EndpointSlice',
      apiVersion: 'discovery.k8s.io/v1',
      path: '/apis/discovery.k8s.io/v1/endpointslices',
      listPage: (page) => list('EndpointSlice', (signal) => discovery.listEndpointSliceForAllNamespaces({limit: page.limit, _continue: page.continue}, abortOn(signal))),
    },
    {
      name: 'AddressPool',
      apiVersion: MAPPING_API_VERSION,
      path: `/apis/${MAPPING_GROUP}/${MAPPING_VERSION}/${ADDRESS_POOL_PLURAL}`,
      optional: true,
      listPage: (page) => list('AddressPool', (signal) => custom.listClusterCustomObject({
        group: MAPPING_GROUP, version: MAPPING_VERSION, plural: ADDRESS_POOL_PLURAL, limit: page.limit, _continue: page.continue,
      }, abortOn(signal))),
    },
    {
      name: 'Namespace',
      apiVersion: 'v1',
      path: '/api/v1/namespaces',
      listPage: (page) => list('Namespace', (signal) => core.listNamespace({limit: page.limit, _continue: page.continue}, abortOn(signal))),
    },
  ]
}

/**
 * Turns a list response into plain wire JSON. The typed clients decode timestamps into Dates; watch events
 * carry strings, and the cache must hold one shape whichever way an object arrived.
 */
function wirePage(list: unknown): ListPage {
  const plain = JSON.parse(JSON.stringify(list, function (this: Record<string, unknown>, key, value: unknown) {
    const original = this[key]
    return original instanceof Date ? original.toISOString().replace(/\.000Z$/, 'Z') : value
  })) as {metadata?: {resourceVersion?: string; continue?: string; _continue?: string}; items?: WireObject[]}
  const metadata = plain.metadata ?? {}
  const next = metadata.continue ?? metadata._continue
  return {items: plain.items ?? [], resourceVersion: metadata.resourceVersion ?? '', ...(next ? {continue: next} : {})}
}

