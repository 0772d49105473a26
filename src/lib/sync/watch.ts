/**
 * The watch loop: level-triggered reconciliation of a SnapshotSource into the kernel.
 *
 * Every pass is a whole sync (snapshot + freshly read host addresses -> plan -> apply what
 * differs), so a change, a resync and a retry are the same thing. Passes are rate-bounded by a
 * BoundedFrequencyRunner; the periodic pass repairs drift and sees new host addresses. A failed
 * pass leaves the kernel as it was (never a flush), backs off exponentially, and makes the next
 * apply full when the backend says so. Nothing is applied until the source has synced: an empty
 * cache must not wipe the rules.
 *
 * Like kube-proxy's partial syncs, a pass triggered by a change trusts the state the previous pass
 * applied instead of reading the kernel back; the first pass, every periodic pass (and any pass a
 * whole resync interval after the last read, however busy the source) and every pass after a
 * failure read the kernel, so drift is repaired within one resync interval. Such a trusting pass is
 * skipped altogether when no Mapping changed beyond its status, labels or resourceVersion, nor a
 * Service or EndpointSlice that a Mapping names (see inputs.ts): a busy cluster's other Services
 * and EndpointSlices change all the time, every status written comes back as a changed Mapping,
 * and none of that can change a rule or a status.
 */
import {setFlagsFromString} from 'node:v8'

import {errorText, silentLogger, type Logger} from '../observe/log.js'
import type {SyncRecord} from '../observe/metrics.js'
import type {Readiness} from '../observe/server.js'
import {PlanMemo} from '../plan/candidates.js'
import type {Snapshot} from '../plan/model.js'
import type {SnapshotSource} from '../source/source.js'
import {BoundedFrequencyRunner, systemClock, type Clock, type RunOutcome, type RunReason} from './debounce.js'
import {passInputs, sameInputs, type PassInputs} from './inputs.js'
import {syncOnce, type SyncDeps, type SyncReport} from './once.js'
import type {SyncSettings} from './settings.js'

/** Runs one sync pass over the snapshot `loadSnapshot` gives; `assumeActual` is the previous pass's `kernelState`. */
export type SyncPass = (loadSnapshot: () => Promise<Snapshot>, options: {full: boolean; assumeActual?: unknown}) => Promise<SyncReport>

/** Receives each pass's outcome (SmartnatMetrics implements it). */
export interface SyncObserver {
  syncSucceeded(record: SyncRecord): void
  syncFailed(seconds: number): void
}

export interface BackoffOptions {
  initialMs: number
  maxMs: number
}

export interface WatchLoopOptions {
  source: SnapshotSource
  sync: SyncPass
  /** Called after every successful pass, e.g. to write Mapping statuses; its failure is logged, not retried. */
  afterSync?: (report: SyncReport) => Promise<void> | void
  observer?: SyncObserver
  logger?: Logger
  clock?: Clock
  /** Least time between the starts of two passes (default 100 ms). */
  minIntervalMs?: number
  /** A pass happens at least this long after the last one (default 60 s). */
  resyncIntervalMs?: number
  /** Delay before retrying a failed pass: initial, doubling, capped (default 1 s .. 30 s). */
  backoff?: BackoffOptions
}

export const DEFAULT_MIN_INTERVAL_MS = 100
export const DEFAULT_RESYNC_INTERVAL_MS = 60_000
export const DEFAULT_BACKOFF: BackoffOptions = {initialMs: 1000, maxMs: 30_000}

/** The one-shot pipeline as a pass of the loop. */
export function syncPass(deps: SyncDeps, settings: SyncSettings): SyncPass {
  // A pass after one change resolves that Mapping again, not every one.
  const planMemo = new PlanMemo()
  return async (loadSnapshot, options) => {
    // The daemon checks the host's prerequisites once, when it starts.
    return syncOnce(deps, loadSnapshot, settings, {...options, checkPrerequisites: false, planMemo})
  }
}

type LastPass = {ok: true; at: number} | {ok: false; at: number; error: string}

/** The state the last pass applied, and when the kernel was last read rather than trusted. */
interface AppliedState {
  state: unknown
  readAt: number
}

export class WatchLoop {
  private readonly runner: BoundedFrequencyRunner
  private readonly clock: Clock
  private readonly logger: Logger
  private readonly backoff: BackoffOptions
  private readonly resyncIntervalMs: number
  private applied: AppliedState | undefined
  private unsubscribe: (() => void) | undefined
  private last: LastPass | undefined
  private failures = 0
  private nextFull = false
  /** What the last pass read from the snapshot, once it and its afterSync hook succeeded. */
  private settled: PassInputs | undefined
  private stopped = false

  constructor(private readonly options: WatchLoopOptions) {
    this.clock = options.clock ?? systemClock
    this.logger = options.logger ?? silentLogger
    this.backoff = options.backoff ?? DEFAULT_BACKOFF
    this.resyncIntervalMs = options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS
    this.runner = new BoundedFrequencyRunner((reason) => this.pass(reason), {
      minIntervalMs: options.minIntervalMs ?? DEFAULT_MIN_INTERVAL_MS,
      maxIntervalMs: this.resyncIntervalMs,
      clock: this.clock,
    })
  }

  /** Starts the source, then syncs on every change and every resync interval. */
  async start(): Promise<void> {
    this.unsubscribe = this.options.source.onChange(() => this.runner.request())
    await this.options.source.start()
    // A source that never synced (API unreachable) resolves start() only when stopped.
    if (!this.stopped) this.runner.start()
  }

  /** Stops the source, then lets the pass in progress finish; the rules stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    this.unsubscribe = undefined
    await this.options.source.stop()
    await this.runner.stop()
  }

  /** Ready once the source has synced, is not failing, and the last pass succeeded; `lastError` is the source's own. */
  readiness(): Readiness {
    const health = this.options.source.health()
    const withError = health.lastError ? {lastError: health.lastError} : {}
    if (!health.synced) return {ready: false, reason: 'source not synced yet', ...withError}
    if (!this.last) return {ready: false, reason: 'no sync has completed yet', ...withError}
    if (!this.last.ok) return {ready: false, reason: `last sync failed: ${this.last.error}`, ...withError}
    // The rules of the last sync keep working, but changes made meanwhile cannot reach the kernel.
    if (health.lastError) return {ready: false, reason: 'source failing; the rules of the last sync stay in place', ...withError}
    return {ready: true}
  }

  private async pass(reason: RunReason): Promise<RunOutcome> {
    const {source} = this.options
    if (!source.health().synced) {
      this.logger.debug('source not synced yet; nothing applied')
      return
    }
    const full = this.nextFull
    const started = this.clock.now()
    const trusted = this.trustedState(reason, full, started)
    const snapshot = source.snapshot()
    const inputs = passInputs(snapshot)
    // Only a pass that would trust the kernel state may be skipped: the reading passes repair drift.
    if (trusted && this.settled && sameInputs(this.settled, inputs)) {
      this.logger.debug('no Mapping, nor a Service or EndpointSlice one names, changed; pass skipped')
      return 'skipped'
    }
    this.settled = undefined
    // A pass that reads the kernel has no use for the state applied last; letting it go before the
    // read halves what a periodic resync holds at once (at 10,000 Mappings, nft's state is ~30 MB).
    if (!trusted) this.applied = undefined
    let result: SyncReport
    try {
      result = await this.options.sync(() => Promise.resolve(snapshot), {full, ...(trusted ? {assumeActual: trusted.state} : {})})
    } catch (error) {
      this.failed(error, started, full)
      return
    }
    this.applied = result.kernelState === undefined ? undefined : {state: result.kernelState, readAt: trusted ? trusted.readAt : started}
    this.succeeded(result, started, full, trusted !== undefined)
    if (await this.runAfterSync(result)) this.settled = inputs
  }

  /** The state to trust instead of reading the kernel, or undefined when this pass must read it. */
  private trustedState(reason: RunReason, full: boolean, now: number): AppliedState | undefined {
    if (!this.applied || full || reason === 'periodic') return undefined
    return now - this.applied.readAt < this.resyncIntervalMs ? this.applied : undefined
  }

  private succeeded(report: SyncReport, started: number, full: boolean, trusted: boolean): void {
    const finishedAt = this.clock.now()
    const seconds = (finishedAt - started) / 1000
    this.failures = 0
    this.nextFull = false
    this.last = {ok: true, at: finishedAt}
    this.options.observer?.syncSucceeded({seconds, finishedAt, verdicts: report.plan.verdicts, rulesProgrammed: report.rulesProgrammed, written: report.applied.written})
    const verdicts = report.plan.verdicts
    const fields = {
      seconds,
      full,
      readKernel: !trusted,
      changed: report.applied.changed,
      configured: verdicts.filter((v) => v.valid && Object.keys(v.configuredAddresses).length > 0).length,
      invalid: verdicts.filter((v) => !v.valid).length,
      rules: report.rulesProgrammed,
      ...(report.applied.changed ? {written: report.applied.written} : {}),
      ...(report.applied.changed || report.conntrackDeleted > 0 ? {conntrackDeleted: report.conntrackDeleted} : {}),
    }
    const faults = [...report.plan.interfaceFaults.map((fault) => fault.reason), ...report.forward.drops.map((drop) => drop.reason)]
    // Every pass says it while it lasts: the rest is served, these addresses are not.
    if (faults.length > 0) this.logger.warn('this host cannot serve some addresses; their Mappings say why', {faults})
    if (report.applied.changed) this.logger.info('sync applied changes', fields)
    // Pods leaving a Service change no rule in service mode, but dropping their connections is worth telling.
    else if (report.conntrackDeleted > 0) this.logger.info('sync: kernel already up to date; dropped connections to vanished pods', fields)
    else this.logger.debug('sync: kernel already up to date', fields)
  }

  private failed(error: unknown, started: number, full: boolean): void {
    const seconds = (this.clock.now() - started) / 1000
    this.failures++
    // The kernel may hold part of what failed, or what someone else did: the next pass reads it.
    this.applied = undefined
    if ((error as {forceFull?: unknown} | undefined)?.forceFull === true) this.nextFull = true
    const retryInMs = Math.min(this.backoff.maxMs, this.backoff.initialMs * 2 ** (this.failures - 1))
    const text = errorText(error)
    this.last = {ok: false, at: this.clock.now(), error: text}
    this.options.observer?.syncFailed(seconds)
    this.logger.error('sync failed; the rules applied before stay in place', {error: text, full, failures: this.failures, retryInMs, nextFull: this.nextFull})
    this.runner.retryAfter(retryInMs)
  }

  /** Runs the afterSync hook; false when it failed. */
  private async runAfterSync(report: SyncReport): Promise<boolean> {
    if (!this.options.afterSync) return true
    try {
      await this.options.afterSync(report)
      return true
    } catch (error) {
      this.logger.warn('after-sync hook failed; the next sync tries again', {error: errorText(error)})
      return false
    }
  }
}

/**
 * Makes V8 collect before the heap has grown far past what is live. A daemon holding 10,000
 * Mappings keeps 50-60 MB live, but by default V8 lets the heap reach about four times that
 * between collections; at half the default growth it peaks near 200 MB instead of 320 MB,
 * and its passes take no longer.
 */
export function limitHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=50')
}
