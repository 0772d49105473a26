import {access} from 'node:fs/promises'

import {Flags} from '@oclif/core'

import {SmartnatCommand} from '../cli/base.js'
import {durationError, parseDuration} from '../cli/duration.js'
import {stopSignal} from '../cli/signals.js'
import {hostFlags, lockFlags, lockOptions, planFlags, removalFlags, removalPolicy, sourceFlags, sourceOptions, syncSettings} from '../cli/flags.js'
import type {Backend} from '../lib/backend/backend.js'
import {createBackend} from '../lib/backend/registry.js'
import {acquireLock, type Lock} from '../lib/host/lock.js'
import {ExecRunner} from '../lib/host/runner.js'
import {createLogger, errorText, LOG_LEVELS, type LogLevel, type Logger} from '../lib/observe/log.js'
import {SmartnatMetrics} from '../lib/observe/metrics.js'
import {DEFAULT_METRICS_ADDRESS, parseListenAddress, startObserveServer, type ObserveServer} from '../lib/observe/server.js'
import {FileWatchSource} from '../lib/source/file-watch.js'
import type {ApiRequest} from '../lib/source/kube/request.js'
import type {SnapshotSource} from '../lib/source/source.js'
import {checkPrerequisites, type SyncReport} from '../lib/sync/once.js'
import type {Publisher} from '../lib/sync/publish.js'
import {limitHeapGrowth, syncPass, WatchLoop} from '../lib/sync/watch.js'

export default class Watch extends SmartnatCommand {
  static override summary = 'Keep this host’s NAT matching the Mappings, as a daemon.'

  static override description = `Syncs whenever the Mappings, Services or EndpointSlices change (promptly when idle, at most once per --min-sync-interval under churn) and every --resync, which also repairs rules someone removed and picks up new host addresses. A failed sync keeps the rules applied before and is retried with backoff. Without --from-file, Mappings come from the Kubernetes API and each one's status and Events are written back. Statuses are written after each sync, never holding up the next one, and a round of writes that takes longer than --status-timeout is abandoned. Serves /healthz (fails when the loop itself is stuck), /readyz (fails when the source is not synced or failing, the last sync failed or is older than twice --resync, or statuses have waited longer than that) and Prometheus /metrics on --metrics-addr. A sync that would remove more than --max-removal of the Mappings programmed here (and at least 10) is held, with /readyz answering 503, until the same removal has lasted --removal-delay resyncs. Holds the smartnat lock while it runs, so a "smartnat sync" from cron waits for it or fails saying who holds it. SIGTERM or SIGINT stops it, leaving the rules in place unless --flush-on-exit.`

  static override examples = [
    {description: 'Watch a directory of manifests', command: 'sudo <%= config.bin %> <%= command.id %> --from-file /etc/smartnat/mappings/'},
    {description: 'Resync every 5 minutes, metrics on all interfaces', command: 'sudo <%= config.bin %> <%= command.id %> -f mappings.yaml --resync 5m --metrics-addr 0.0.0.0:9469'},
  ]

  static override flags = {
    ...sourceFlags,
    ...hostFlags,
    ...planFlags,
    ...lockFlags,
    ...removalFlags,
    'removal-delay': Flags.integer({
      summary: 'Apply a held mass removal once the same Mappings have been about to go for this many --resync intervals.',
      default: 2,
      min: 1,
      helpValue: 'RESYNCS',
    }),
    resync: Flags.string({
      summary: 'Sync at least this often even without changes (60s, 5m, or seconds).',
      default: '60s',
      helpValue: 'DURATION',
    }),
    'min-sync-interval': Flags.string({
      summary: 'Least time between two syncs while changes keep coming (100ms, 1s).',
      default: '100ms',
      helpValue: 'DURATION',
    }),
    'status-timeout': Flags.string({
      summary: 'Longest one round of Mapping status and Event writes may take; past it the round is abandoned and the next sync writes again.',
      default: '2m',
      helpValue: 'DURATION',
    }),
    'metrics-addr': Flags.string({
      summary: 'Where to serve /healthz, /readyz and /metrics.',
      default: DEFAULT_METRICS_ADDRESS,
      helpValue: 'HOST:PORT',
    }),
    'log-level': Flags.string({
      summary: 'Least severe log lines shown (JSON lines unless stdout is a terminal).',
      options: [...LOG_LEVELS],
      default: 'info',
    }),
    'flush-on-exit': Flags.boolean({summary: 'Remove everything smartnat installed when stopping.'}),
  }

  async run(): Promise<void> {
    const {flags} = await this.parseWithConfig(Watch)
    limitHeapGrowth()
    const resyncMs = this.duration('resync', flags.resync)
    const minIntervalMs = this.duration('min-sync-interval', flags['min-sync-interval'])
    const writebackDeadlineMs = this.duration('status-timeout', flags['status-timeout'])
    try {
      parseListenAddress(flags['metrics-addr'])
    } catch (error) {
      this.error(`--metrics-addr: ${errorText(error)}`, {exit: 2})
    }
    let settings, policy
    try {
      settings = syncSettings(flags)
      policy = removalPolicy(flags)
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    const logger = createLogger({level: flags['log-level'] as LogLevel, format: process.stdout.isTTY ? 'text' : 'json'})
    const metrics = new SmartnatMetrics()
    const {source, publisher} = await this.source(flags, logger.with({component: 'source'}), metrics)
    const runner = new ExecRunner({timeoutSeconds: flags['command-timeout'], ...(flags.netns ? {netns: flags.netns} : {})})
    const backend = createBackend(flags.backend, runner, {forwardAccept: flags['forward-accept']})
    await checkPrerequisites(runner, backend).catch((error: unknown) => this.error(errorText(error)))

    const lock = await acquireLock(lockOptions(flags, 'watch', (line) => logger.info(line))).catch((error: unknown) =>
      this.error(`cannot start: ${errorText(error)}`),
    )
    const stop = stopSignal()
    const afterSync = publisher
      ? async (report: SyncReport, signal: AbortSignal) => {
          const published = await publisher.publish(report, new Date(), signal)
          if (published.status.patched > 0 || published.eventsCreated > 0) {
            logger.info('statuses written', {patched: published.status.patched, events: published.eventsCreated})
          }
          // A write that failed fails the round, so the next sync is not skipped and writes again.
          const [first, ...more] = published.errors
          if (first) throw new Error(`${errorText(first)}${more.length > 0 ? ` (and ${more.length} more status or Event writes failed)` : ''}`, {cause: first})
        }
      : undefined
    const loop = new WatchLoop({
      source,
      sync: syncPass({runner, backend}, settings),
      ...(afterSync ? {afterSync, writebackDeadlineMs} : {}),
      observer: metrics,
      logger,
      minIntervalMs,
      resyncIntervalMs: resyncMs,
      massRemoval: {policy, delayMs: flags['removal-delay'] * resyncMs},
    })
    let server: ObserveServer | undefined
    try {
      server = await startObserveServer({
        address: flags['metrics-addr'],
        readiness: () => loop.readiness(),
        liveness: () => loop.liveness(),
        metrics: () => metrics.render(),
      })
      logger.info('watching', {source: flags['from-file'] ?? 'kubernetes', resync: flags.resync, metricsAddr: `${server.host}:${server.port}`, lock: lock.path})
      const started = loop.start()
      // A signal stops the wait for a source that cannot sync; a start that fails ends the daemon.
      const signal = await Promise.race([stop.received, started.then(() => stop.received)])
      logger.info('stopping; waiting for the sync in progress', {signal})
      await loop.stop()
      await started
      await this.finish(flags['flush-on-exit'], backend, logger)
    } catch (error) {
      await loop.stop().catch(() => {})
      this.error(errorText(error))
    } finally {
      await server?.close()
      await releaseQuietly(lock, logger)
      stop.dispose()
    }
    exitIfLingering()
  }

  /** Where Mappings, Services and EndpointSlices come from, and where verdicts go back to. */
  private async source(
    flags: Parameters<typeof sourceOptions>[0],
    logger: Logger,
    metrics: SmartnatMetrics,
  ): Promise<{source: SnapshotSource; publisher?: Publisher}> {
    let options
    try {
      options = sourceOptions(flags)
    } catch (error) {
      this.error(errorText(error), {exit: 2})
    }
    const path = options.fromFile
    if (path) {
      await access(path).catch(() => this.error(`--from-file ${path}: no such file or directory`, {exit: 2}))
      return {source: new FileWatchSource(path, {logger, onReadError: () => metrics.manifestReadError()})}
    }
    // The API client is loaded for the API only: it adds 70 MB and 0.4 s to a start.
    const [{loadKubeConfig, plainHttpWarning}, {KubeSource}, {kubePublisher}] = await Promise.all([
      import('../lib/source/kube/config.js'),
      import('../lib/source/kube/source.js'),
      import('../lib/sync/publish.js'),
    ])
    let kubeConfig
    try {
      kubeConfig = loadKubeConfig({
        ...(options.kubeconfig ? {kubeconfig: options.kubeconfig} : {}),
        ...(options.context ? {context: options.context} : {}),
      })
    } catch (error) {
      // Nothing in the flags or the kubeconfig changes by trying again: fail at start, with a distinct exit code.
      this.error(errorText(error), {exit: 2})
    }
    const insecure = plainHttpWarning(kubeConfig)
    if (insecure) logger.warn(insecure)
    const api = {timeoutMs: options.apiTimeoutMs, onFailure: (request: ApiRequest, code: string) => metrics.apiError({...request, code})}
    const source = new KubeSource(kubeConfig, {api})
    // Kinds fail and recover one by one: following only the source's first failing kind would
    // report another kind's old error as new the moment the first one recovers.
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
    return {source, publisher: kubePublisher(kubeConfig, undefined, api)}
  }

  private async finish(flush: boolean, backend: Backend, logger: Logger): Promise<void> {
    if (!flush) return logger.info('stopped; rules left in place')
    const report = await backend.flush({dryRun: false})
    const removed = Object.values(report.removed).reduce((n, items) => n + items.length, 0)
    logger.info('stopped; removed everything smartnat installed', {removed})
  }

  private duration(flag: string, text: string): number {
    const ms = parseDuration(text)
    if (ms === undefined) this.error(durationError(flag, text), {exit: 2})
    return ms
  }
}

/**
 * Ends the process shortly unless it ends by itself first. Its work is done, but requests abandoned
 * to an API server that hangs may hold sockets open for as long as the server keeps them.
 */
function exitIfLingering(): void {
  setTimeout(() => process.exit(), LINGER_AFTER_STOP_MS).unref()
}

const LINGER_AFTER_STOP_MS = 1000

async function releaseQuietly(lock: Lock, logger: Logger): Promise<void> {
  await lock.release().catch((error: unknown) => logger.warn('cannot release the lock', {path: lock.path, error: errorText(error)}))
}
