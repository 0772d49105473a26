/** A reconnect wait (the kube source's Delay) that the test releases by hand: retries happen exactly when the test says so. */
import type {Delay} from '../../src/lib/source/kube/backoff.js'

export class GatedDelay {
  /** Every wait asked for, in milliseconds, in order. */
  readonly requested: number[] = []
  private waiting: (() => void)[] = []

  readonly delay: Delay = (ms, signal) => new Promise<void>((resolve) => {
    this.requested.push(ms)
    const done = () => {
      signal.removeEventListener('abort', done)
      resolve()
    }
    if (signal.aborted) return done()
    signal.addEventListener('abort', done, {once: true})
    this.waiting.push(done)
  })

  /** Waits not released yet. */
  get pending(): number {
    return this.waiting.length
  }

  releaseAll(): void {
    const waiting = this.waiting
    this.waiting = []
    for (const done of waiting) done()
  }
}
