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
 * failure read the kernel, so drift is repaired within one resync interval. A change that arrives
 * while such a pass reads the kernel does not wait for the read: the read gives way (read-claim.ts),
 * a trusting pass applies the change, and the read runs again after it; it gives way at most
 * MAX_READ_GIVE_WAYS times in a row, so that changes that never stop cannot put off drift repair for
 * long. Such a trusting pass is
 * skipped altogether when no Mapping changed beyond its status, labels or resourceVersion, nor a
 * Service or EndpointSlice that a Mapping names (see inputs.ts): a busy cluster's other Services
 * and EndpointSlices change all the time, every status written comes back as a changed Mapping,
 * and none of that can change a rule or a status.
 *
 * Statuses are written after the pass, not in it (writeback.ts): a pass applies the kernel and hands
 * its verdicts over, so an API server that hangs never holds the kernel hostage. A pass counts as
 * settled, and the next one like it may be skipped, from when it applied: its statuses coming back
 * while the rest are written (10,000 of them after a start) would only hand the same verdicts over
 * again. Should its writeback fail, it is unsettled, and a pass skipped meanwhile runs at once to
 * write again. A change on the host unsettles it too: the host is an input the snapshot does not hold.
 * A pass that would remove more of the programmed Mappings than the removal guard allows (see
 * guard.ts) applies nothing and makes the daemon unready; the same removal goes ahead once it has
 * lasted the guard's delay, and any pass that applies ends the hold.
 */
import type {HostChanges} from '../host/host-changes.js'
import {errorText, silentLogger, type Logger} from '../observe/log.js'
import type {SyncRecord} from '../observe/metrics.js'
import type {Liveness, Readiness} from '../observe/server.js'
import {KindCounts} from '../plan/changed.js'
import {PlanMemo} from '../plan/memo.js'
import type {Ipv4} from '../net/ipv4.js'
import type {HostInfo, MappingVerdict, Snapshot} from '../plan/model.js'
import type {SnapshotSource} from '../source/source.js'
import {BoundedFrequencyRunner, systemClock, type Clock, type RunOutcome, type RunReason} from './debounce.js'
import {livenessOf, readinessOf, type LastPass, type LoopState} from './health.js'
import {describeRemoval, formatShare, MassRemovalError, RemovalHold, type HeldRemoval, type Removal, type RemovalGuard, type RemovalPolicy} from './guard.js'
import {CleanupMemo} from './cleanup-memo.js'
import {describePending, type PendingCleanup} from './conntrack-cleanup.js'
import {ReadClaim, ReadGaveWayError} from './read-claim.js'
import {SettledInputs} from './inputs.js'
import {syncOnce, type SyncDeps, type SyncReport} from './once.js'
import type {SyncSettings} from './settings.js'
import {StatusWriteback, type WritebackObserver, type WriteReport} from './writeback.js'

/**
 * Runs one sync pass over the snapshot `loadSnapshot` gives; `assumeActual` is the previous pass's
 * `kernelState`; `claim`, given to a reading pass, may make it give way to a change; `changeWaiting`
 * says whether a change waits for the loop, so that work that can wait (a garbage collection) does;
 * `afterRead` is called once a reading pass has read and parsed the kernel's state (SyncOptions.afterRead).
 */
export type SyncPass = (
  loadSnapshot: () => Promise<Snapshot>,
  options: {full: boolean; assumeActual?: unknown; removalGuard?: RemovalGuard; retryCleanup?: PendingCleanup; claim?: ReadClaim; changeWaiting?: () => boolean; afterRead?: () => void},
) => Promise<SyncReport>

/** Receives each pass's outcome and each failed status writeback (SmartnatMetrics implements it). */
export interface SyncObserver extends WritebackObserver {
  syncSucceeded(record: SyncRecord): void
  syncFailed(seconds: number): void
  /** A pass was held by the mass-removal guard: it would have removed `mappings` programmed Mappings. */
  removalHeld(mappings: number): void
  /** A pass applied its rules but could not drop the connections to vanished targets. */
  conntrackCleanupFailed(): void
  /** A kernel read gave way to a change that arrived while it ran; it is done again after that change's pass. */
  readGaveWay(): void
}

export interface BackoffOptions {
  initialMs: number
  maxMs: number
}

export interface WatchLoopOptions {
  source: SnapshotSource
  sync: SyncPass
  /**
   * Writes a successful pass's verdicts back (Mapping statuses), after the pass and bounded by
   * `writebackDeadlineMs`; it must stop starting writes once the signal is aborted. A failure is
   * logged, and the next pass writes again.
   */
  afterSync?: WriteReport<SyncReport>
  /** How long one status writeback may take before it is abandoned (default 2 min). */
  writebackDeadlineMs?: number
  observer?: SyncObserver
  logger?: Logger
  clock?: Clock
  /** Least time between the starts of two passes (default 100 ms). */
  minIntervalMs?: number
  /** A pass happens at least this long after the last one (default 60 s). */
  resyncIntervalMs?: number
  /** Delay before retrying a failed pass: initial, doubling, capped (default 1 s .. 30 s). */
  backoff?: BackoffOptions
  /** Hold a pass that removes many programmed Mappings until the same removal has lasted `delayMs`; none: no guard. */
  massRemoval?: {policy: RemovalPolicy; delayMs: number}
  /** An address or link that changed on the host asks for a pass, as a changed Mapping does. */
  hostChanges?: Pick<HostChanges, 'onChange'>
}

export const DEFAULT_MIN_INTERVAL_MS = 100
export const DEFAULT_RESYNC_INTERVAL_MS = 60_000
export const DEFAULT_BACKOFF: BackoffOptions = {initialMs: 1000, maxMs: 30_000}
export const DEFAULT_WRITEBACK_DEADLINE_MS = 120_000
/** A pass may run this long, and the loop go this long without starting one, whatever the intervals, before /healthz fails. */
export const MIN_STALL_LIMIT_MS = 120_000
/** How many times in a row the kernel read gives way to a change before it goes through whatever arrives. */
export const MAX_READ_GIVE_WAYS = 3

/**
 * The one-shot pipeline as a pass of the loop. With `hostChanges` following the host, a pass that
 * trusts the kernel state also trusts the host read last while no address or link changed.
 */
export function syncPass(deps: SyncDeps, settings: SyncSettings, hostChanges?: HostChanges): SyncPass {
  // A pass after one change resolves that Mapping again, not every one.
  const planMemo = new PlanMemo()
  // What the Services of mode-direct Mappings listed at the last pass: a pod gone since then is found
  // without looking through the kernel's connections on every pass.
  let listedBefore: readonly Ipv4[] | undefined
  // Conntrack cleanup looks at the Mappings and verdicts that changed rather than at all of them.
  const cleanupMemo = new CleanupMemo()
  let lastHost: HostInfo | undefined
  // Until a pass has rendered and applied, the backend has no render of its own to read the kernel
  // against: the first pass reads once it has rendered, later ones while they plan (once.ts).
  let applied = false
  return async (loadSnapshot, {changeWaiting: _, ...options}) => {
    const trusting = options.assumeActual !== undefined && !options.full
    const assumeHost = trusting && hostChanges?.unchanged ? lastHost : undefined
    if (assumeHost === undefined) {
      lastHost = undefined
      hostChanges?.reading()
    }
    // The daemon checks the host's prerequisites once, when it starts.
    const report = await syncOnce(deps, loadSnapshot, settings, {
      ...options,
      checkPrerequisites: false,
      planMemo,
      cleanupMemo,
      ...(listedBefore ? {listedBefore} : {}),
      ...(assumeHost ? {assumeHost} : {}),
      ...(applied ? {} : {readAfterRender: true}),
    })
    applied = true
    listedBefore = report.directListed
    lastHost = report.host
    return report
  }
}

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
  private readonly stallLimitMs: number
  private readonly writeback: StatusWriteback<SyncReport> | undefined
  private readonly hold: RemovalHold | undefined
  private applied: AppliedState | undefined
  private unsubscribe: (() => void) | undefined
  private last: LastPass | undefined
  /** When the last pass succeeded, or when the loop was made while none has. */
  private lastSuccessAt: number
  private failures = 0
  private nextFull = false
  /** What the last pass read from the snapshot, once it succeeded, until its statuses fail to be written. */
  private readonly settled = new SettledInputs()
  /** A pass was skipped since the last one ran: should that one's writeback fail, a pass must run to write again. */
  private skippedSinceLast = false
  /** Changes heard from the host so far: a pass during which one came may have read the host before it, and settles nothing. */
  private hostChangesHeard = 0
  /** Passes that got past the skip check so far: a writeback settles its pass only if no later one began. */
  private passes = 0
  private passStartedAt: number | undefined
  private lastActivityAt: number | undefined
  /** Conntrack cleanup the last pass could not do: the next pass retries it, so it is never skipped. */
  private pendingCleanup: PendingCleanup | undefined
  private stopped = false
  /**
   * The reading pass in flight: what it planned from, to tell a change from a status coming back or
   * an unrelated Service changing; and, while it may still give way to a change, its claim and how to end its wait.
   */
  private reading: {inputs: SettledInputs; claim?: ReadClaim; gaveWay: () => void} | undefined
  /** Reads that gave way since the kernel was last read. */
  private readGiveWays = 0
  /** A read gave way: the kernel must be read again, after the pass that goes first. */
  private readOwed = false
  /** The next pass applies the change a read gave way to: it trusts the state applied last, however old. */
  private trustNext = false
  /** Something changed since the last pass began: the source said so, or the host (`hostChangeQueued`). */
  private changeQueued = false
  private hostChangeQueued = false
  /** A pass that gave way, still finishing its read: the next read waits for it, so that two never overlap. */
  private discarded: Promise<unknown> | undefined
  /** The verdicts of the last passes, counted as each pass logs them, from those that changed. */
  private readonly verdictKinds = new KindCounts(verdictKind)

  constructor(private readonly options: WatchLoopOptions) {
    this.clock = options.clock ?? systemClock
    this.lastSuccessAt = this.clock.now()
    this.logger = options.logger ?? silentLogger
    this.backoff = options.backoff ?? DEFAULT_BACKOFF
    this.resyncIntervalMs = options.resyncIntervalMs ?? DEFAULT_RESYNC_INTERVAL_MS
    // Passes start at least once per resync interval, or per backoff delay while failing.
    this.stallLimitMs = Math.max(MIN_STALL_LIMIT_MS, 2 * Math.max(this.resyncIntervalMs, this.backoff.maxMs))
    const {afterSync, observer} = options
    this.writeback = afterSync
      ? new StatusWriteback({
          write: afterSync,
          deadlineMs: options.writebackDeadlineMs ?? DEFAULT_WRITEBACK_DEADLINE_MS,
          clock: this.clock,
          logger: this.logger,
          ...(observer ? {observer} : {}),
        })
      : undefined
    this.hold = options.massRemoval && new RemovalHold(options.massRemoval.policy, options.massRemoval.delayMs, this.clock)
    this.runner = new BoundedFrequencyRunner((reason) => this.timedPass(reason), {
      minIntervalMs: options.minIntervalMs ?? DEFAULT_MIN_INTERVAL_MS,
      maxIntervalMs: this.resyncIntervalMs,
      clock: this.clock,
    })
  }

  /** Starts the source, then syncs on every change and every resync interval. */
  async start(): Promise<void> {
    const unsubscribeSource = this.options.source.onChange(() => this.changed())
    const unsubscribeHost = this.options.hostChanges?.onChange(() => {
      this.hostChangesHeard++
      this.settled.unsettle()
      this.hostChangeQueued = true
      this.changed()
    })
    this.unsubscribe = () => {
      unsubscribeSource()
      unsubscribeHost?.()
    }
    await this.options.source.start()
    // A source that never synced (API unreachable) resolves start() only when stopped.
    if (!this.stopped) {
      this.lastActivityAt = this.clock.now()
      this.runner.start()
    }
  }

  /** Stops the source, lets the pass in progress finish, then the status writeback in progress (within its deadline); the rules stay as they are. */
  async stop(): Promise<void> {
    this.stopped = true
    this.unsubscribe?.()
    this.unsubscribe = undefined
    await this.options.source.stop()
    await this.runner.stop()
    await this.discarded
    await this.writeback?.stop()
  }

  /** Something changed: a pass is asked for, and a kernel read in flight gives way to a change it did not plan from, unless it has too often. */
  private changed(): void {
    this.changeQueued = true
    this.runner.request()
    const reading = this.reading
    if (!reading?.claim || this.readGiveWays >= MAX_READ_GIVE_WAYS || !this.changeWaits() || !reading.claim.giveWay()) return
    this.reading = undefined
    this.readGiveWays++
    this.readOwed = true
    this.trustNext = true
    reading.gaveWay()
  }

  /**
   * Whether the reading pass in flight has a change waiting for it that it did not plan from. Most
   * of what a source hears is not one (statuses coming back, a cluster's other Services): a read
   * that gave way to those would only be done again.
   */
  private changeWaits(): boolean {
    const reading = this.reading
    if (!reading || !this.changeQueued) return false
    return this.hostChangeQueued || !reading.inputs.same(this.options.source.snapshot())
  }

  /** Ready once the source has synced and is not failing, the last pass succeeded within two resync intervals and statuses are not long overdue (health.ts). */
  readiness(): Readiness {
    return readinessOf(this.state())
  }

  /**
   * When the last pass succeeded, for /healthcheck; before any has, when the loop was made, as the Go
   * controller's /healthcheck said its start time until its first reconcile.
   */
  lastSucceededAt(): number {
    return this.lastSuccessAt
  }

  /** Alive while passes neither run past the stall limit nor stop being scheduled (health.ts). */
  liveness(): Liveness {
    return livenessOf(this.state())
  }

  private state(): LoopState {
    const backlog = this.writeback?.backlog()
    const held = this.hold?.held()
    return {
      now: this.clock.now(),
      resyncIntervalMs: this.resyncIntervalMs,
      stallLimitMs: this.stallLimitMs,
      source: this.options.source.health(),
      ...(this.last ? {last: this.last} : {}),
      ...(this.passStartedAt === undefined ? {} : {passStartedAt: this.passStartedAt}),
      ...(this.lastActivityAt === undefined ? {} : {lastActivityAt: this.lastActivityAt}),
      ...(backlog ? {writeback: backlog} : {}),
      ...(held ? {heldRemoval: heldReason(held, this.hold!.policy)} : {}),
    }
  }

  /** A pass, with when it started and ended kept for liveness. */
  private async timedPass(reason: RunReason): Promise<RunOutcome> {
    this.passStartedAt = this.clock.now()
    try {
      return await this.pass(reason)
    } finally {
      this.passStartedAt = undefined
      this.lastActivityAt = this.clock.now()
    }
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
    this.trustNext = false
    this.changeQueued = false
    this.hostChangeQueued = false
    const snapshot = source.snapshot()
    // Only a pass that would trust the kernel state may be skipped: the reading passes repair drift.
    if (trusted && !this.pendingCleanup && this.settled.same(snapshot)) {
      this.logger.debug('no Mapping, nor a Service or EndpointSlice one names, changed; pass skipped')
      this.skippedSinceLast = true
      this.readAgainIfOwed()
      return 'skipped'
    }
    this.settled.unsettle()
    this.skippedSinceLast = false
    const passNumber = ++this.passes
    const hostChangesHeard = this.hostChangesHeard
    // A read that may give way keeps the state applied last for the pass that goes first. One that
    // may not has no use for it; letting it go before the read halves what a periodic resync holds
    // at once (at 10,000 Mappings, nft's state is ~30 MB).
    const claim = !trusted && this.applied && !full && this.readGiveWays < MAX_READ_GIVE_WAYS ? new ReadClaim() : undefined
    if (!trusted && !claim) this.applied = undefined
    let gaveWay = (): void => {}
    const yielded = new Promise<'gave way'>((resolve) => (gaveWay = () => resolve('gave way')))
    this.reading = trusted ? undefined : {inputs: inputsOf(snapshot), ...(claim ? {claim} : {}), gaveWay}
    let result: SyncReport
    try {
      // Two kernel reads never overlap: this one waits for the one that gave way, if still running.
      if (!trusted) await this.discarded
      if (claim?.gaveWay) return
      const running = this.options.sync(() => Promise.resolve(snapshot), {
        full,
        ...(trusted ? {assumeActual: trusted.state} : {}),
        ...(this.hold ? {removalGuard: this.hold} : {}),
        ...(this.pendingCleanup ? {retryCleanup: this.pendingCleanup} : {}),
        ...(claim ? {claim} : {}),
        changeWaiting: () => this.changeWaits(),
      })
      const outcome = claim ? await Promise.race([running, yielded]) : await running
      if (outcome === 'gave way') {
        this.discarded = running.catch(() => undefined)
        this.logger.debug('a change arrived while the kernel was read; it goes first, and the kernel is read again after it', {gaveWay: this.readGiveWays})
        this.options.observer?.readGaveWay()
        return
      }
      result = outcome
    } catch (error) {
      // Held, the kernel is as it was: a state this pass trusted is still what it holds.
      if (error instanceof MassRemovalError && this.hold) {
        this.held(error.removal)
        // A read held, like one that applied, is done: the next is due at the next resync.
        if (trusted) this.readAgainIfOwed()
        else this.readDone()
      } else if (!(error instanceof ReadGaveWayError)) this.failed(error, started, full)
      return
    } finally {
      this.reading = undefined
    }
    if (trusted) this.readAgainIfOwed()
    else this.readDone()
    this.applied = result.kernelState === undefined ? undefined : {state: result.kernelState, readAt: trusted ? trusted.readAt : started}
    // The pass retried what was pending; what it reports pending now includes whatever failed again.
    this.pendingCleanup = result.pendingCleanup
    this.succeeded(result, started, full, trusted !== undefined)
    if (this.hostChangesHeard === hostChangesHeard) this.settled.settle(snapshot)
    this.writeback?.handOver(result, (written) => {
      if (written || passNumber !== this.passes) return
      this.settled.unsettle()
      if (this.skippedSinceLast) this.runner.request()
    })
  }

  /** The read that gave way runs again once the change it gave way to is applied. */
  private readAgainIfOwed(): void {
    if (this.readOwed) this.runner.request()
  }

  /** A read went through: the next may give way again. */
  private readDone(): void {
    this.readOwed = false
    this.readGiveWays = 0
  }

  /** The state to trust instead of reading the kernel, or undefined when this pass must read it. */
  private trustedState(reason: RunReason, full: boolean, now: number): AppliedState | undefined {
    if (!this.applied || full) return undefined
    if (this.trustNext) return this.applied
    if (this.readOwed || reason === 'periodic') return undefined
    return now - this.applied.readAt < this.resyncIntervalMs ? this.applied : undefined
  }

  private succeeded(report: SyncReport, started: number, full: boolean, trusted: boolean): void {
    const finishedAt = this.clock.now()
    const seconds = (finishedAt - started) / 1000
    this.failures = 0
    this.nextFull = false
    this.last = {ok: true, at: finishedAt}
    this.lastSuccessAt = finishedAt
    this.released(report)
    this.options.observer?.syncSucceeded({seconds, finishedAt, verdicts: report.plan.verdicts, rulesProgrammed: report.rulesProgrammed, written: report.applied.written})
    const verdicts = report.plan.verdicts
    const fields = {
      seconds,
      full,
      readKernel: !trusted,
      changed: report.applied.changed,
      configured: this.verdictKinds.count(verdicts, 'configured'),
      invalid: this.verdictKinds.count(verdicts, 'invalid'),
      rules: report.rulesProgrammed,
      ...(report.applied.changed ? {written: report.applied.written} : {}),
      ...(report.applied.changed || report.conntrackDeleted > 0 ? {conntrackDeleted: report.conntrackDeleted} : {}),
    }
    if (report.conntrackError !== undefined) {
      this.options.observer?.conntrackCleanupFailed()
      this.logger.warn('sync applied, but dropping connections to vanished targets failed; the next pass tries again', {
        error: report.conntrackError,
        pending: report.pendingCleanup ? describePending(report.pendingCleanup) : '',
      })
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

  private held(removal: Removal): void {
    const hold = this.hold!.hold(removal)
    this.options.observer?.removalHeld(removal.removed.length)
    const fields = {...removalFields(removal), maxRemoval: formatShare(this.hold!.policy.maxShare), heldSince: isoTime(hold.since), appliesAt: isoTime(hold.until)}
    if (hold.first) this.logger.warn('mass removal held; the rules stay as they are', fields)
    else this.logger.debug('mass removal still held', fields)
  }

  /** Ends a hold once a pass applied: the removal went ahead, or the source no longer asks for it. */
  private released(report: SyncReport): void {
    const held = this.hold?.release()
    if (!held) return
    if (report.massRemoval) this.logger.info('mass removal applied after being held', {...removalFields(report.massRemoval), heldSince: isoTime(held.since)})
    else this.logger.info('mass removal no longer asked for; nothing was removed while it was held', {heldSince: isoTime(held.since)})
  }
}

/** How a pass's log line counts a verdict: programmed here, invalid (not merely being deleted), or neither. */
function verdictKind(verdict: MappingVerdict): 'configured' | 'invalid' | 'other' {
  if (verdict.valid) return Object.keys(verdict.configuredAddresses).length > 0 ? 'configured' : 'other'
  return verdict.deleting === undefined ? 'invalid' : 'other'
}

/** `snapshot`'s inputs, to compare later snapshots with. */
function inputsOf(snapshot: Snapshot): SettledInputs {
  const inputs = new SettledInputs()
  inputs.settle(snapshot)
  return inputs
}

function removalFields(removal: Removal): Record<string, unknown> {
  const {programmed, removed} = removal
  return {programmed, removed: removed.length, remaining: programmed - removed.length, mappings: removed.slice(0, 10)}
}

function heldReason({removal, until}: HeldRemoval, policy: RemovalPolicy): string {
  return `mass removal held: the source would remove ${describeRemoval(removal)}, more than --max-removal ${formatShare(policy.maxShare)}; applied at ${isoTime(until)} if it persists`
}

function isoTime(ms: number): string {
  return new Date(ms).toISOString()
}
