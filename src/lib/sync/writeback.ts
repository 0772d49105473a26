/**
 * Status writeback off the kernel pass: a pass applies the kernel, hands its report here and is
 * done, so an API server that hangs costs status writes, never a kernel pass.
 *
 * At most one writeback runs at a time. A report handed over meanwhile waits, and a newer one
 * replaces it: every report carries the verdicts of every Mapping, so the latest supersedes the
 * rest. A writeback that outlives its deadline is aborted and abandoned (it starts no further
 * write), and the one waiting, if any, starts. A writeback that fails or is abandoned is logged
 * and counted; the next pass's report writes again.
 */
import {errorText, type Logger} from '../observe/log.js'
import type {Clock} from './debounce.js'

/** Writes one report; stops starting writes once `signal` is aborted. */
export type WriteReport<T> = (report: T, signal: AbortSignal) => Promise<void> | void

/** Receives each writeback that did not get its report written (SmartnatMetrics implements it). */
export interface WritebackObserver {
  writebackFailed(reason: 'error' | 'timeout'): void
}

export interface StatusWritebackOptions<T> {
  write: WriteReport<T>
  /** How long one writeback may take before it is abandoned. */
  deadlineMs: number
  clock: Clock
  logger: Logger
  observer?: WritebackObserver
}

/** Verdicts handed over and not yet written: since when, and what the last attempt met. */
export interface WritebackBacklog {
  since: number
  /** When the writeback in progress started, if one is. */
  runningSince?: number
  lastError?: string
}

interface Handover<T> {
  report: T
  at: number
  /** Called once this report's writeback ends: true when its writes all succeeded, false when it failed or was abandoned. */
  ended: (written: boolean) => void
}

interface Running<T> {
  handover: Handover<T>
  startedAt: number
  timer: unknown
  /** Settles when the write ends or is abandoned. */
  settled: Promise<void>
  /** Aborts the write and moves on without it. */
  abandon(reason: Error): void
}

/** How long stop() waits for a writeback in progress, however long its deadline. */
export const STOP_GRACE_MS = 5000

export class StatusWriteback<T> {
  private running: Running<T> | undefined
  private waiting: Handover<T> | undefined
  /** When the oldest verdicts not yet written were handed over; undefined when all are written. */
  private unwrittenSince: number | undefined
  private lastError: string | undefined
  private stopped = false

  constructor(private readonly options: StatusWritebackOptions<T>) {}

  /** Writes `report` now if no writeback runs, else once the running one ends, unless a newer report replaces it first. */
  handOver(report: T, ended: (written: boolean) => void = () => {}): void {
    if (this.stopped) return
    const handover = {report, at: this.options.clock.now(), ended}
    this.unwrittenSince ??= handover.at
    if (this.running) this.waiting = handover
    else this.start(handover)
  }

  /** Undefined when every report handed over has been written. */
  backlog(): WritebackBacklog | undefined {
    if (this.unwrittenSince === undefined) return undefined
    return {
      since: this.unwrittenSince,
      ...(this.running ? {runningSince: this.running.startedAt} : {}),
      ...(this.lastError ? {lastError: this.lastError} : {}),
    }
  }

  /** Drops the waiting report and lets the running writeback end, for at most its deadline or STOP_GRACE_MS. */
  async stop(): Promise<void> {
    this.stopped = true
    this.waiting = undefined
    const running = this.running
    if (!running) return
    const {clock} = this.options
    const grace = clock.setTimeout(() => running.abandon(new Error(`status writeback cut short by shutdown after ${STOP_GRACE_MS / 1000}s`)), STOP_GRACE_MS)
    await running.settled
    clock.clearTimeout(grace)
  }

  private start(handover: Handover<T>): void {
    const {clock, deadlineMs} = this.options
    const abort = new AbortController()
    let finish: () => void = () => {}
    const running: Running<T> = {
      handover,
      startedAt: clock.now(),
      timer: undefined,
      settled: new Promise((resolve) => (finish = resolve)),
      abandon: (reason) => {
        abort.abort(reason)
        this.ended(running, 'timeout', reason)
        finish()
      },
    }
    this.running = running
    running.timer = clock.setTimeout(() => running.abandon(new Error(`status writeback timed out after ${deadlineMs / 1000}s`)), deadlineMs)
    Promise.resolve()
      .then(() => this.options.write(handover.report, abort.signal))
      .then(
        () => this.ended(running, 'written'),
        (error: unknown) => this.ended(running, 'error', error),
      )
      .finally(finish)
  }

  /** The first of a writeback's outcomes and its deadline counts; a write finishing after its deadline changes nothing. */
  private ended(running: Running<T>, outcome: 'written' | 'error' | 'timeout', error?: unknown): void {
    if (this.running !== running) return
    this.running = undefined
    this.options.clock.clearTimeout(running.timer)
    if (outcome === 'written') {
      this.lastError = undefined
      // What waits now is newer than what was just written.
      this.unwrittenSince = this.waiting?.at
      running.handover.ended(true)
    } else {
      this.lastError = errorText(error)
      this.options.observer?.writebackFailed(outcome)
      const message = outcome === 'timeout' ? 'status writeback abandoned; the next sync writes again' : 'status writeback failed; the next sync writes again'
      this.options.logger.warn(message, {error: this.lastError})
      running.handover.ended(false)
    }
    const next = this.waiting
    this.waiting = undefined
    if (next && !this.stopped) this.start(next)
  }
}
