/** The kube source: Mappings, Services and EndpointSlices of all namespaces, AddressPools and Namespaces (their labels), kept current by list/watch. */
import type {KubeConfig} from '@kubernetes/client-node'
import type {NamespaceResource} from '../../mapping/namespace.js'
import type {AddressPoolResource} from '../../mapping/pool.js'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../../mapping/types.js'
import type {Snapshot} from '../../plan/model.js'
import {Backoff, sleep, type BackoffOptions, type Delay} from './backoff.js'
import {describeApiError} from './errors.js'
import {watchedKinds, type KindName, type WatchedKind, type WireObject} from './kinds.js'
import {DEFAULT_PAGE_SIZE, listAll} from './pager.js'
import {isNotFound, Reflector, type ObjectChange} from './reflector.js'
import type {ApiOptions} from './request.js'

export interface KubeSourceOptions {
  /** Items per list page. */
  pageSize?: number
  /** How reconnects wait; the real timer when absent. */
  delay?: Delay
  backoff?: BackoffOptions
  /** How long the server keeps one watch open before the source resumes it; 5-10 minutes when absent. */
  watchTimeoutSeconds?: number
  /** The deadline of every request, and who hears of each failed one. */
  api?: ApiOptions
}

export interface KindHealth {
  synced: boolean
  resourceVersion: string
  objects: number
  lastError?: string
}

/** What /readyz reports: ready when every kind has listed and none is waiting out a failure. */
export interface SourceHealth {
  synced: boolean
  healthy: boolean
  lastError?: string
  kinds: Record<KindName, KindHealth>
}

export type ChangeListener = (change: ObjectChange) => void

export class KubeSource {
  private readonly reflectors: Reflector[]
  private readonly listeners = new Set<ChangeListener>()
  private readonly stateListeners = new Set<() => void>()
  private started = false
  private stopping = false

  constructor(
    private readonly kubeConfig: KubeConfig,
    private readonly options: KubeSourceOptions = {},
  ) {
    const api = options.api ?? {}
    this.reflectors = watchedKinds(kubeConfig, api).map((kind) => new Reflector({
      kind,
      kubeConfig,
      api,
      pageSize: options.pageSize ?? DEFAULT_PAGE_SIZE,
      backoff: new Backoff(options.backoff),
      delay: options.delay ?? sleep,
      random: options.backoff?.random ?? Math.random,
      watchTimeoutSeconds: options.watchTimeoutSeconds,
      onChange: (change) => {
        for (const listener of this.listeners) listener(change)
      },
      onState: () => {
        for (const listener of this.stateListeners) listener()
      },
    }))
  }

  /** Starts listing and watching; resolves once every kind has listed (or when stopped first). */
  start(): Promise<void> {
    if (!this.started) {
      this.started = true
      for (const reflector of this.reflectors) reflector.start()
    }
    return new Promise<void>((resolve) => {
      const check = () => {
        if (!this.synced && !this.stopping) return
        this.stateListeners.delete(check)
        resolve()
      }
      this.stateListeners.add(check)
      check()
    })
  }

  /** Ends every watch and pending reconnect wait; resolves when nothing of the source is left running. */
  async stop(): Promise<void> {
    this.stopping = true
    for (const listener of this.stateListeners) listener()
    await Promise.all(this.reflectors.map((r) => r.stop()))
  }

  /** Calls `listener` for every object added, changed or deleted; returns the function that unsubscribes. */
  onChange(listener: ChangeListener): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  /** Calls `listener` whenever `synced` or `lastError` may have changed; returns the function that unsubscribes. */
  onStateChange(listener: () => void): () => void {
    this.stateListeners.add(listener)
    return () => this.stateListeners.delete(listener)
  }

  /** Every kind has been listed at least once. */
  get synced(): boolean {
    return this.reflectors.every((r) => r.synced)
  }

  /** Synced and connected: no kind is waiting out a failure. */
  get healthy(): boolean {
    return this.synced && this.reflectors.every((r) => r.lastError === undefined)
  }

  /** The failure of the first kind that is currently failing, if any. */
  get lastError(): Error | undefined {
    return this.reflectors.find((r) => r.lastError !== undefined)?.lastError
  }

  health(): SourceHealth {
    const kinds = Object.fromEntries(this.reflectors.map((r) => [r.kind, {
      synced: r.synced,
      resourceVersion: r.resourceVersion,
      objects: r.objects.size,
      ...(r.lastError ? {lastError: r.lastError.message} : {}),
    }])) as Record<KindName, KindHealth>
    const lastError = this.lastError
    return {synced: this.synced, healthy: this.healthy, ...(lastError ? {lastError: lastError.message} : {}), kinds}
  }

  /** The cache as the planner reads it; objects are shared with the cache, so callers must not modify them. */
  snapshot(): Snapshot {
    // Sorted by namespace/name, so the snapshot does not depend on the order events arrived in.
    // The arrays are the cache's own, handed out again while nothing changes: nobody modifies a snapshot.
    const [mappings, services, endpointSlices, addressPools, namespaces] = this.reflectors.map((r) => r.objects.sorted() as WireObject[])
    return toSnapshot(mappings ?? [], services ?? [], endpointSlices ?? [], addressPools ?? [], namespaces ?? [])
  }

  /** Lists everything once with paging and no watch, for a one-shot sync. */
  listOnce(): Promise<Snapshot> {
    return listSnapshot(this.kubeConfig, this.options.pageSize, this.options.api)
  }
}

/** Lists Mappings, Services and EndpointSlices of all namespaces with paging, without watching; each page request ends at the deadline of `api`. */
export async function listSnapshot(kubeConfig: KubeConfig, pageSize = DEFAULT_PAGE_SIZE, api: ApiOptions = {}): Promise<Snapshot> {
  const lists = await Promise.all(watchedKinds(kubeConfig, api).map((kind) => listKind(kind, pageSize)))
  return toSnapshot(lists[0]!, lists[1]!, lists[2]!, lists[3]!, lists[4]!)
}

/** Every Service of all namespaces as the API has it now, with paging, kept as the cache keeps them. */
export async function listServices(kubeConfig: KubeConfig, api: ApiOptions = {}, pageSize = DEFAULT_PAGE_SIZE): Promise<ServiceResource[]> {
  const kind = watchedKinds(kubeConfig, api).find((watched) => watched.name === 'Service')!
  return (await listAll(kind, pageSize)).items as unknown as ServiceResource[]
}

async function listKind(kind: WatchedKind, pageSize: number): Promise<WireObject[]> {
  try {
    return (await listAll(kind, pageSize)).items
  } catch (error) {
    // A CRD that is not installed has no objects.
    if (kind.optional && isNotFound(error)) return []
    throw new Error(`listing ${kind.name}s from ${kind.path}: ${describeApiError(error)}`, {cause: error})
  }
}

function toSnapshot(mappings: WireObject[], services: WireObject[], endpointSlices: WireObject[], addressPools: WireObject[], namespaces: WireObject[]): Snapshot {
  return {
    mappings: mappings as unknown as MappingResource[],
    services: services as unknown as ServiceResource[],
    endpointSlices: endpointSlices as unknown as EndpointSliceResource[],
    addressPools: addressPools as unknown as AddressPoolResource[],
    namespaces: namespaces as unknown as NamespaceResource[],
  }
}
