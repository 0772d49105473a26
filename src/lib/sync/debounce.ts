/**
 * Runs a function on request, rate-bounded: promptly when idle, at most once per `minIntervalMs`
 * under churn (a burst of requests becomes one run), never two at once (a request during a run
 * becomes exactly one more run after it), and at least once per `maxIntervalMs` after the last run
 * (a run that reports it skipped its work counts for neither bound).
 * The shape of kube-proxy's BoundedFrequencyRunner, with an injectable clock so tests never sleep.
 */

/** Time and timers; the real one is `systemClock`, tests pass a fake. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number
  setTimeout(callback: () => void, ms: number): unknown
  clearTimeout(handle: unknown): void
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
}

/** Why a run happens: somebody asked for it, or `maxIntervalMs` passed with nobody asking. */
export type RunReason = 'requested' | 'periodic'

/** What a run may report: it found nothing to do, so the periodic run stays due when it was. */
export type RunOutcome = 'skipped' | void

export interface BoundedRunnerOptions {
  minIntervalMs: number
  /** A run happens this long after the previous one ended even when nobody asked. */
  maxIntervalMs: number
  clock?: Clock
}

export class BoundedFrequencyRunner {
  private readonly clock: Clock
  private pending = false
  private stopped = true
  private running: Promise<void> | undefined
  private timer: unknown
  /** No run may start before this time (rate bound and retry backoff). */
  private notBefore = 0
  /** When the next periodic run is due: `maxIntervalMs` after the last run that was not skipped. */
  private periodicAt = 0

  constructor(
    private readonly fn: (reason: RunReason) => Promise<RunOutcome>,
    private readonly options: BoundedRunnerOptions,
  ) {
    if (!(options.minIntervalMs >= 0) || !(options.maxIntervalMs > 0)) {
      throw new Error(`sync intervals must be positive: min ${options.minIntervalMs} ms, max ${options.maxIntervalMs} ms`)
    }
    this.clock = options.clock ?? systemClock
  }

  /** Begins with one run right away. */
  start(): void {
    this.stopped = false
    this.request()
  }

  /** Asks for a run as soon as the bounds allow. */
  request(): void {
    this.pending = true
    this.arm()
  }

  /** Asks for another run, but not before `delayMs` from now (a failed run backing off). */
  retryAfter(delayMs: number): void {
    this.notBefore = Math.max(this.notBefore, this.clock.now() + delayMs)
    this.request()
  }

  /** No further runs; resolves when the run in progress, if any, has finished. */
  async stop(): Promise<void> {
    this.stopped = true
    this.disarm()
    await this.running
  }

  private arm(): void {
    if (this.stopped || this.running) return
    this.disarm()
    const now = this.clock.now()
    const delay = this.pending ? Math.max(0, this.notBefore - now) : Math.max(0, this.periodicAt - now)
    // Even a run due now goes through a timer: a caller's request() never runs fn inside its own stack,
    // and requests made in the same tick share the run.
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined
      this.run()
    }, delay)
  }

  private disarm(): void {
    if (this.timer === undefined) return
    this.clock.clearTimeout(this.timer)
    this.timer = undefined
  }

  private run(): void {
    if (this.stopped || this.running) return
    const reason: RunReason = this.pending ? 'requested' : 'periodic'
    this.pending = false
    const notBefore = this.notBefore
    this.notBefore = this.clock.now() + this.options.minIntervalMs
    this.running = this.fn(reason)
      .then(
        (outcome) => {
          if (outcome !== 'skipped') this.periodicAt = this.clock.now() + this.options.maxIntervalMs
          // A run that did nothing (a status of its own coming back) must not hold the next change back.
          else this.notBefore = notBefore
        },
        () => {
          // fn reports its own failures; a rejection here must not stop the runner.
          this.periodicAt = this.clock.now() + this.options.maxIntervalMs
        },
      )
      .finally(() => {
        this.running = undefined
        this.arm()
      })
  }
}
