/**
 * The allocator Lease against the test API server: one holder at a time, renewals conditional on the
 * version read, a takeover only after the holder has not renewed for a whole duration (by the taker's
 * clock), release on stop, on clocks the test moves.
 */
import {expect} from 'chai'
import type {Clock} from '../../src/lib/sync/debounce.js'
import {ALLOCATOR_LEASE_NAME, AllocatorLease, allocatorIdentity} from '../../src/lib/sync/allocator-lease.js'
import {LEASE_SETTINGS, StepClock, T0, startLeaseServer, type LeaseServer} from '../support/lease-server.js'

// The tests call tryHold themselves: no StepClock timer is ever fired.
describe('allocator Lease', function () {
  let leases: LeaseServer
  const stored = () => leases.stored(ALLOCATOR_LEASE_NAME)
  const writes = () => leases.leaseWrites().length

  beforeEach(async function () {
    leases = await startLeaseServer()
  })

  afterEach(async function () {
    await leases.server.stop()
  })

  const instance = (name: string, clock: Clock) => new AllocatorLease(leases.leaseApi(), name, LEASE_SETTINGS, clock)

  it('tells two instances on one host apart', function () {
    expect(allocatorIdentity('edge-1')).to.match(/^edge-1_[0-9a-f]{8}$/)
    expect(allocatorIdentity('edge-1')).to.not.equal(allocatorIdentity('edge-1'))
  })

  it('the first instance takes it; the other follows while it is renewed', async function () {
    const clockA = new StepClock()
    const clockB = new StepClock()
    const a = instance('a', clockA)
    const b = instance('b', clockB)
    expect(await a.tryHold()).to.equal(true)
    expect(await b.tryHold()).to.equal(false)
    expect(stored().spec).to.deep.include({holderIdentity: 'a', leaseDurationSeconds: 40, leaseTransitions: 0})
    for (let i = 0; i < 8; i++) {
      clockA.time += 10_000
      clockB.time += 10_000
      expect(await a.tryHold()).to.equal(true)
      expect(await b.tryHold()).to.equal(false)
      expect([a.holds(), b.holds()]).to.deep.equal([true, false])
    }
    expect([a.term(), b.term()]).to.deep.equal([1, 0])
  })

  it('a holder that stops renewing stops deciding after two thirds of the duration; another takes over only after a whole duration unchanged', async function () {
    const clockA = new StepClock()
    const clockB = new StepClock()
    const a = instance('a', clockA)
    const b = instance('b', clockB)
    await a.tryHold()
    expect(await b.tryHold()).to.equal(false)
    clockA.time += 26_000
    expect(a.holds()).to.equal(true)
    clockA.time += 1000
    expect(a.holds()).to.equal(false)
    clockB.time += 39_000
    expect(await b.tryHold()).to.equal(false)
    clockB.time += 1000
    expect(await b.tryHold()).to.equal(true)
    expect(stored().spec).to.deep.include({holderIdentity: 'b', leaseTransitions: 1})
    expect(b.term()).to.equal(1)
    // The old holder, back, finds the Lease taken: its renewal is refused and it follows.
    expect(await a.tryHold()).to.equal(false)
    expect(a.holds()).to.equal(false)
  })

  it('two instances racing for a free Lease: one write wins, the other gets 409 and follows', async function () {
    const a = instance('a', new StepClock())
    const b = instance('b', new StepClock())
    const results = await Promise.all([a.tryHold(), b.tryHold()])
    expect(results.filter(Boolean)).to.have.length(1)
    expect(stored().spec!.holderIdentity).to.equal(results[0] ? 'a' : 'b')
  })

  it('a holder that stops gives it up, and the next instance takes it at its next try', async function () {
    const a = instance('a', new StepClock())
    const b = instance('b', new StepClock())
    await a.tryHold()
    expect(await b.tryHold()).to.equal(false)
    await a.stop()
    expect(stored().spec!.holderIdentity).to.equal('')
    expect(await b.tryHold()).to.equal(true)
  })

  it('a Lease seen for the first time is expired when its renewTime is two durations old by this clock (a one-shot sync)', async function () {
    const a = instance('a', new StepClock())
    await a.tryHold()
    const before = writes()
    expect(await instance('cron-1', new StepClock(T0 + 79_000)).tryHold()).to.equal(false)
    expect(writes()).to.equal(before)
    expect(await instance('cron-2', new StepClock(T0 + 80_000)).tryHold()).to.equal(true)
  })
})
