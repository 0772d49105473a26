/** `smartnat watch` as one library call: the daemon, from its source and lock to its last sync and the flush on exit. */
import type {Backend} from '../backend/backend.js'
import {HostChanges} from '../host/host-changes.js'
import {acquireLock, waitingLine, type Lock} from '../host/lock.js'
import {toolVersionsFile} from '../host/tool-versions.js'
import {createLogger, errorText, type LogFormat, type Logger, type LogLevel} from '../observe/log.js'
import {SmartnatMetrics} from '../observe/metrics.js'
import {startObserveServer, type ObserveServer} from '../observe/server.js'
import type {SourceOptions} from '../source/oneshot.js'
import {flushedCount} from '../sync/flush.js'
import type {RemovalPolicy} from '../sync/guard.js'
import type {SyncReport} from '../sync/once.js'
import {checkPrerequisites} from '../sync/prepare.js'
import type {Publisher} from '../sync/publish.js'
import type {SyncSettings} from '../sync/settings.js'
import {syncPass, WatchLoop} from '../sync/watch.js'
import {collectingAroundReads, limitHeapGrowth} from './heap.js'
import {openHost, type HostOptions} from './host.js'
import {openWatchSource} from './watch-source.js'

export interface WatchRequest {
  source: SourceOptions
  host: HostOptions
  settings: SyncSettings
  /** Sync at least this often, even without changes; `text` as given, for the log. */
  resync: {ms: number; text: string}
  /** Least time between two syncs while changes keep coming. */
  minIntervalMs: number
  /** Longest one round of status and Event writes may take. */
  writebackDeadlineMs: number
  /** A held mass removal goes ahead once it has lasted `delayMs`. */
  massRemoval: {policy: RemovalPolicy; delayMs: number}
  /** Where /healthz, /readyz, /healthcheck and /metrics are served, `HOST:PORT`. */
  metricsAddress: string
  /** The lock's file and how long to wait for it; the daemon logs who holds it while it waits. */
  lock: {path: string; waitMs: number}
  /** Remove everything smartnat installed when stopping. */
  flushOnExit: boolean
  /** The file that keeps the tools' versions (toolVersionsPath); none: each tool is asked. */
  toolVersions?: string
  log: {level: LogLevel; format: LogFormat}
  /** Logged once at start (settings that were ignored). */
  warnings?: string[]
}

/** What tells the daemon to stop (SIGTERM or SIGINT); asked for once the daemon holds the lock. */
export interface StopSignal {
  readonly received: Promise<string>
  dispose(): void
}

/**
 * Runs the daemon until `stopSignal()` fires; the kernel keeps its rules unless the request asks for
 * a flush. A source that cannot be opened, a missing prerequisite or a lock held too long fail it
 * before anything is applied.
 */
export async function runWatch(request: WatchRequest, stopSignal: () => StopSignal): Promise<void> {
  limitHeapGrowth()
  const logger = createLogger(request.log)
  for (const warning of request.warnings ?? []) logger.warn(warning)
  const metrics = new SmartnatMetrics()
  const {source, publisher, lease, allocatorLease} = await openWatchSource(request.source, logger.with({component: 'source'}), metrics)
  const {runner, backend} = openHost(request.host, {daemon: true})
  await checkPrerequisites(runner, backend, request.toolVersions === undefined ? undefined : toolVersionsFile(request.toolVersions))
  const lock = await acquireLock({...request.lock, purpose: 'watch', onWait: (holder) => logger.info(waitingLine(request.lock.path, request.lock.waitMs, holder))}).catch(
    (error: unknown) => {
      throw new Error(`cannot start: ${errorText(error)}`, {cause: error})
    },
  )
  const stop = stopSignal()
  const afterSync = publisher ? writeBack(publisher, logger) : undefined
  const hostChanges = new HostChanges(runner)
  const loop = new WatchLoop({
    source,
    sync: collectingAroundReads(syncPass({runner, backend}, request.settings, hostChanges)),
    hostChanges,
    ...(afterSync ? {afterSync, writebackDeadlineMs: request.writebackDeadlineMs} : {}),
    observer: metrics,
    logger,
    minIntervalMs: request.minIntervalMs,
    resyncIntervalMs: request.resync.ms,
    massRemoval: request.massRemoval,
  })
  let server: ObserveServer | undefined
  try {
    hostChanges.start()
    server = await startObserveServer({
      address: request.metricsAddress,
      readiness: () => loop.readiness(),
      liveness: () => loop.liveness(),
      metrics: () => metrics.render(),
      lastSuccess: () => loop.lastSucceededAt(),
    })
    logger.info('watching', {source: request.source.fromFile ?? 'kubernetes', resync: request.resync.text, metricsAddr: `${server.host}:${server.port}`, lock: lock.path})
    // Renewed before the first status write (which waits for it), so that no other host takes this one's keys for a gone host's.
    lease?.start()
    allocatorLease?.start()
    const started = loop.start()
    // A signal stops the wait for a source that cannot sync; a start that fails ends the daemon.
    const signal = await Promise.race([stop.received, started.then(() => stop.received)])
    logger.info('stopping; waiting for the sync in progress', {signal})
    await loop.stop()
    await started
    await finish(request.flushOnExit, backend, logger)
  } catch (error) {
    await loop.stop().catch(() => {})
    throw error
  } finally {
    await hostChanges.stop()
    lease?.stop()
    // After the loop has stopped: no allocation is written once the Lease is given up.
    await allocatorLease?.stop()
    await server?.close()
    await releaseQuietly(lock, logger)
    stop.dispose()
  }
}

/** Writes a pass's statuses and Events; a write that failed fails the round, so the next sync is not skipped and writes again. */
function writeBack(publisher: Publisher, logger: Logger): (report: SyncReport, signal: AbortSignal) => Promise<void> {
  return async (report, signal) => {
    const published = await publisher.publish(report, new Date(), signal)
    if (published.status.patched > 0 || published.eventsCreated > 0) {
      logger.info('statuses written', {patched: published.status.patched, events: published.eventsCreated})
    }
    if (published.status.gone > 0) logger.info('statuses not written: Mappings deleted since the sync', {gone: published.status.gone})
    const allocation = published.allocation
    if (allocation && (allocation.written > 0 || allocation.conflicts > 0)) {
      const {allocated, released, pending, conflicts} = allocation
      logger.info('LoadBalancer addresses recorded', {allocated, released, updated: allocation.written - allocated - released, pending, conflicts})
    }
    const mappings = published.mappingAllocation
    if (mappings && (mappings.written > 0 || mappings.conflicts > 0)) {
      const {allocated, released, pending, conflicts} = mappings
      logger.info('Mapping allocations recorded', {allocated, released, pending, conflicts})
    }
    const [first, ...more] = published.errors
    if (first) throw new Error(`${errorText(first)}${more.length > 0 ? ` (and ${more.length} more status or Event writes failed)` : ''}`, {cause: first})
  }
}

async function finish(flush: boolean, backend: Pick<Backend, 'flush'>, logger: Logger): Promise<void> {
  if (!flush) return logger.info('stopped; rules left in place')
  const report = await backend.flush({dryRun: false})
  logger.info('stopped; removed everything smartnat installed', {removed: flushedCount(report)})
}

async function releaseQuietly(lock: Lock, logger: Logger): Promise<void> {
  await lock.release().catch((error: unknown) => logger.warn('cannot release the lock', {path: lock.path, error: errorText(error)}))
}
