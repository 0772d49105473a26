/** Reconnect backoff: doubling, bounded, reset after success, jitter within bounds; the real wait ends on abort. */
import {expect} from 'chai'
import {Backoff, sleep} from '../../src/lib/source/kube/backoff.js'

describe('kube backoff', function () {
  it('doubles from initialMs up to maxMs and starts over after a reset', function () {
    const backoff = new Backoff({initialMs: 100, maxMs: 1000, jitter: 0})
    expect(Array.from({length: 6}, () => backoff.next())).to.deep.equal([100, 200, 400, 800, 1000, 1000])
    backoff.reset()
    expect(backoff.next()).to.equal(100)
  })

  it('adds jitter as a fraction of the wait, never past maxMs', function () {
    const high = new Backoff({initialMs: 100, maxMs: 300, jitter: 0.5, random: () => 0.999})
    expect(Array.from({length: 4}, () => high.next())).to.deep.equal([150, 300, 300, 300])
    const half = new Backoff({initialMs: 100, maxMs: 10_000, jitter: 0.2, random: () => 0.5})
    expect(half.next()).to.equal(110)
  })

  it('stays bounded after very many failures', function () {
    const backoff = new Backoff({initialMs: 1, maxMs: 30_000, jitter: 0})
    for (let i = 0; i < 5000; i++) backoff.next()
    expect(backoff.next()).to.equal(30_000)
  })

  it('rejects settings that cannot back off', function () {
    expect(() => new Backoff({initialMs: 0})).to.throw('backoff: need 0 < initialMs <= maxMs, factor >= 1 and jitter >= 0 (got 0, 30000, 2, 0.2)')
    expect(() => new Backoff({initialMs: 100, maxMs: 50})).to.throw('(got 100, 50, 2, 0.2)')
  })

  it('sleep ends early and clears its timer when aborted', async function () {
    const controller = new AbortController()
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    // Mocha arms its own timeout timer once the test has returned its promise.
    await new Promise((resolve) => setImmediate(resolve))
    const before = timers()
    const waiting = sleep(60_000, controller.signal)
    expect(timers()).to.equal(before + 1)
    controller.abort()
    // Resolving at all is ending early: the timer would take longer than the test may.
    await waiting
    expect(timers()).to.equal(before)
  })

  it('sleep waits the given time when not aborted: it ends when its timer fires', async function () {
    const armed: {callback: () => void; ms: number | undefined}[] = []
    const realSetTimeout = globalThis.setTimeout
    globalThis.setTimeout = ((callback: () => void, ms?: number) => {
      armed.push({callback, ms})
      return realSetTimeout(() => undefined, 0)
    }) as typeof setTimeout
    let ended = false
    try {
      void sleep(30, new AbortController().signal).then(() => (ended = true))
    } finally {
      globalThis.setTimeout = realSetTimeout
    }
    expect(armed.map((timer) => timer.ms)).to.deep.equal([30])
    await Promise.resolve()
    expect(ended, 'before its timer fired').to.equal(false)
    armed[0]!.callback()
    await Promise.resolve()
    expect(ended, 'once its timer fired').to.equal(true)
  })
})
