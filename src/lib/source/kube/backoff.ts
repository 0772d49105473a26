/** Bounded exponential backoff for reconnecting to the API server, with the wait injectable so tests never sleep. */

/** Waits `ms` milliseconds, or less when `signal` aborts; never rejects. */
export type Delay = (ms: number, signal: AbortSignal) => Promise<void>

/** The real wait: a timer that is cleared when the signal aborts, so a stopped source leaves none behind. */
export const sleep: Delay = (ms, signal) => new Promise<void>((resolve) => {
  if (signal.aborted) {
    resolve()
    return
  }
  const timer = setTimeout(done, ms)
  signal.addEventListener('abort', done, {once: true})
  function done(): void {
    clearTimeout(timer)
    signal.removeEventListener('abort', done)
    resolve()
  }
})

export interface BackoffOptions {
  /** First wait after a failure. */
  initialMs?: number
  /** No wait is longer than this, jitter included. */
  maxMs?: number
  factor?: number
  /** Fraction of each wait added at random, so many instances do not reconnect in step. */
  jitter?: number
  /** Source of randomness in [0, 1); Math.random when absent. */
  random?: () => number
}

export const DEFAULT_BACKOFF = {initialMs: 500, maxMs: 30_000, factor: 2, jitter: 0.2}

export class Backoff {
  private attempt = 0
  private readonly initialMs: number
  private readonly maxMs: number
  private readonly factor: number
  private readonly jitter: number
  private readonly random: () => number

  constructor(options: BackoffOptions = {}) {
    this.initialMs = options.initialMs ?? DEFAULT_BACKOFF.initialMs
    this.maxMs = options.maxMs ?? DEFAULT_BACKOFF.maxMs
    this.factor = options.factor ?? DEFAULT_BACKOFF.factor
    this.jitter = options.jitter ?? DEFAULT_BACKOFF.jitter
    this.random = options.random ?? Math.random
    if (!(this.initialMs > 0) || !(this.maxMs >= this.initialMs) || !(this.factor >= 1) || !(this.jitter >= 0)) {
      throw new Error(`backoff: need 0 < initialMs <= maxMs, factor >= 1 and jitter >= 0 (got ${this.initialMs}, ${this.maxMs}, ${this.factor}, ${this.jitter})`)
    }
  }

  /** The wait before the next attempt; each call without a reset doubles it, up to maxMs. */
  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * this.factor ** this.attempt)
    this.attempt++
    return Math.min(this.maxMs, Math.round(base * (1 + this.jitter * this.random())))
  }

  /** Called after a success: the next failure waits initialMs again. */
  reset(): void {
    this.attempt = 0
  }
}
