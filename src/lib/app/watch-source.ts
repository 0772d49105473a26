/** Where the daemon gets Mappings, Services and EndpointSlices, and where verdicts go back to. */
import {access} from 'node:fs/promises'
import {hostname} from 'node:os'

import type {Logger} from '../observe/log.js'
import type {SmartnatMetrics} from '../observe/metrics.js'
import {ExposingSource} from '../source/exposing.js'
import {FileWatchSource} from '../source/file-watch.js'
import type {ApiRequest} from '../source/kube/request.js'
import type {KubeSource} from '../source/kube/source.js'
import {openKubeConfig, type SourceOptions} from '../source/oneshot.js'
import type {SnapshotSource} from '../source/source.js'
import type {AllocatorLease} from '../sync/allocator-lease.js'
import type {HostLease} from '../sync/lease.js'
import type {Publisher} from '../sync/publish.js'

/**
 * A watched directory or file, or the Kubernetes API with a publisher of statuses and Events, this
 * host's Lease and the allocator Lease (neither started yet); throws when the path or the kubeconfig is wrong.
 */
export async function openWatchSource(
  options: SourceOptions,
  logger: Logger,
  metrics: SmartnatMetrics,
): Promise<{source: SnapshotSource; publisher?: Publisher; lease?: HostLease; allocatorLease?: AllocatorLease}> {
  const path = options.fromFile
  if (path) {
    await access(path).catch((error: unknown) => {
      throw new Error(`--from-file ${path}: no such file or directory`, {cause: error})
    })
    const watched = new FileWatchSource(path, {logger, onReadError: () => metrics.manifestReadError()})
    return {source: new ExposingSource(watched, options.defaultLoadBalancer ?? false, {allocates: false, ...dynamicPorts(options)})}
  }
  // Loaded for the API only, like the client (see openKubeConfig). Nothing in the flags or the
  // kubeconfig changes by trying again: the daemon fails at start.
  const [{kubeConfig, warning}, {KubeSource}, {kubePublisher}, {requireStatusSubresource}, {openHostLease}, {openAllocatorLease}] = await Promise.all([
    openKubeConfig(options),
    import('../source/kube/source.js'),
    import('../sync/publish.js'),
    import('../source/kube/crd.js'),
    import('../sync/lease.js'),
    import('../sync/allocator-lease.js'),
  ])
  if (warning) logger.warn(warning)
  const api = {timeoutMs: options.apiTimeoutMs, onFailure: (request: ApiRequest, code: string) => metrics.apiError({...request, code})}
  const source = new KubeSource(kubeConfig, {api})
  logApiErrors(source, logger)
  const checked = new CheckedSource(source, (signal) =>
    requireStatusSubresource(kubeConfig, api, {
      signal,
      onRetry: (reason, retryInMs) => logger.warn('cannot tell yet whether the Mapping CRD serves the status subresource; asking again', {reason, retryInMs}),
    }))
  const lease = openHostLease(kubeConfig, hostname(), options.lease, api, logger.with({component: 'lease'}))
  const allocatorLease = openAllocatorLease(kubeConfig, lease.hostName, options.lease, api, logger.with({component: 'allocator'}))
  const allocator = {leadership: allocatorLease, durationSeconds: allocatorLease.durationSeconds}
  const publisher = kubePublisher(kubeConfig, lease.hostName, api, lease, {defaultLoadBalancer: options.defaultLoadBalancer ?? false, allocator, ...dynamicPorts(options)})
  return {source: new ExposingSource(checked, options.defaultLoadBalancer ?? false, dynamicPorts(options)), publisher, lease, allocatorLease}
}

function dynamicPorts(options: SourceOptions): Pick<SourceOptions, 'dynamicPorts'> {
  return options.dynamicPorts === undefined ? {} : {dynamicPorts: options.dynamicPorts}
}

/**
 * A source that starts only once `check` has passed, so that no pass runs (and no status is written)
 * before it; a check that fails fails start(), which ends the daemon.
 */
class CheckedSource implements SnapshotSource {
  private readonly stopping = new AbortController()

  constructor(
    private readonly inner: SnapshotSource,
    private readonly check: (signal: AbortSignal) => Promise<void>,
  ) {}

  async start(): Promise<void> {
    await Promise.all([this.inner.start(), this.check(this.stopping.signal)])
  }

  async stop(): Promise<void> {
    this.stopping.abort()
    await this.inner.stop()
  }

  snapshot(): ReturnType<SnapshotSource['snapshot']> {
    return this.inner.snapshot()
  }

  onChange(listener: () => void): () => void {
    return this.inner.onChange(listener)
  }

  health(): ReturnType<SnapshotSource['health']> {
    return this.inner.health()
  }
}

/**
 * Logs each kind's API error once when it starts or changes, and its recovery. Kinds fail and
 * recover one by one: following only the source's first failing kind would report another kind's
 * old error as new the moment the first one recovers.
 */
function logApiErrors(source: KubeSource, logger: Logger): void {
  const failing = new Map<string, string>()
  source.onStateChange(() => {
    for (const [kind, {lastError}] of Object.entries(source.health().kinds)) {
      if (lastError && lastError !== failing.get(kind)) {
        failing.set(kind, lastError)
        logger.warn('Kubernetes API error; keeping the last applied rules', {kind, error: lastError})
      } else if (!lastError && failing.delete(kind)) {
        logger.info('Kubernetes API reachable again', {kind})
      }
    }
  })
}
