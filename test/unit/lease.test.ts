/**
 * This host's Lease against the test API server: created once, renewed in place (MicroTime times), read back
 * with the other hosts' Leases into the set of live hosts, on a clock the test moves.
 */
import type {V1Lease} from '@kubernetes/client-node'
import {expect} from 'chai'
import {microTime} from '../../src/lib/source/kube/leases.js'
import {HOST_LEASE_LABEL, HostLease, leaseName} from '../../src/lib/sync/lease.js'
import type {ApiServer} from '../support/apiserver/index.js'
import {LEASE_SETTINGS, StepClock, T0, startLeaseServer, type LeaseServer} from '../support/lease-server.js'

describe('host Lease', function () {
  let leases: LeaseServer
  let server: ApiServer
  let clock: StepClock
  const stored = (name: string) => leases.stored(name) as V1Lease & {spec: {renewTime: string}}
  const leaseWrites = () => leases.leaseWrites()

  beforeEach(async function () {
    leases = await startLeaseServer()
    server = leases.server
    clock = new StepClock()
  })

  afterEach(async function () {
    await server.stop()
  })

  const otherHost = (holder: string, renewedAt: number) =>
    server.api.create(server.types.leases, 'smartnat-system', {
      metadata: {name: leaseName(holder), labels: {[HOST_LEASE_LABEL]: 'true'}},
      spec: {holderIdentity: holder, leaseDurationSeconds: 40, renewTime: microTime(new Date(renewedAt)).toISOString()},
    })

  it('names the Lease after the host, as a valid object name', function () {
    expect(leaseName('Edge_1.example.com')).to.equal('smartnat-edge-1.example.com')
    expect(leaseName('edge-')).to.equal('smartnat-edge')
  })

  it('creates its Lease, then renews it in place with MicroTime times', async function () {
    const lease = new HostLease(leases.leaseApi(), 'edge-1', LEASE_SETTINGS, clock)
    expect(await lease.renew()).to.equal(true)
    expect(stored('smartnat-edge-1').spec).to.deep.include({holderIdentity: 'edge-1', leaseDurationSeconds: 40, renewTime: '2026-01-01T00:00:00.000000Z'})
    expect(stored('smartnat-edge-1').metadata!.labels).to.deep.equal({[HOST_LEASE_LABEL]: 'true'})
    clock.time += 10_000
    expect(await lease.renew()).to.equal(true)
    expect(stored('smartnat-edge-1').spec.renewTime).to.equal('2026-01-01T00:00:10.000000Z')
    expect(leaseWrites().map((r) => r.split(' ')[0])).to.deep.equal(['POST', 'PUT'])
  })

  it('renews every quarter of the duration once started, one write per renewal, and stops renewing when stopped', async function () {
    const lease = new HostLease(leases.leaseApi(), 'edge-1', LEASE_SETTINGS, clock)
    lease.start()
    await lease.started()
    for (let i = 0; i < 3; i++) {
      clock.time += 10_000
      const fire = clock.timer!
      clock.timer = undefined
      fire()
      while (clock.timer === undefined) await new Promise((resolve) => setImmediate(resolve))
    }
    expect(leaseWrites()).to.have.length(4)
    expect(stored('smartnat-edge-1').spec.renewTime).to.equal('2026-01-01T00:00:30.000000Z')
    lease.stop()
    expect(clock.timer).to.equal(undefined)
  })

  it('counts as live the hosts it has seen renew within their duration, by its own clock, itself included', async function () {
    const lease = new HostLease(leases.leaseApi(), 'edge-1', LEASE_SETTINGS, clock)
    expect(lease.live(), 'nothing before the first read').to.equal(undefined)
    // edge-2's clock is an hour behind: what it writes as renewTime is never compared with this host's clock.
    otherHost('edge-2', T0 - 3_600_000)
    otherHost('edge-3', T0 - 3_600_000)
    await lease.renew()
    expect([...lease.live()!.hosts].sort(), 'a Lease seen for the first time counts as just renewed').to.deep.equal(['edge-1', 'edge-2', 'edge-3'])
    clock.time += 30_000
    server.api.patch(server.types.leases, 'smartnat-system', leaseName('edge-2'), 'application/merge-patch+json', {spec: {renewTime: microTime(new Date(T0 - 3_570_000)).toISOString()}})
    await lease.renew()
    clock.time += 15_000
    expect([...lease.live()!.hosts].sort(), 'edge-3 not seen renewed for 45 s').to.deep.equal(['edge-1', 'edge-2'])
    clock.time += 30_000
    expect(lease.live(), 'the Leases were read more than one duration ago').to.equal(undefined)
  })

  it('sees a host that started since the last read once it reads again', async function () {
    const lease = new HostLease(leases.leaseApi(), 'edge-1', LEASE_SETTINGS, clock)
    await lease.renew()
    otherHost('edge-0', T0)
    expect([...lease.live()!.hosts]).to.deep.equal(['edge-1'])
    expect([...(await lease.refresh())!.hosts].sort()).to.deep.equal(['edge-0', 'edge-1'])
  })

  it('refuses to take over a Lease another host holds, and says so', async function () {
    otherHost('edge-1', T0)
    server.api.patch(server.types.leases, 'smartnat-system', 'smartnat-edge-1', 'application/merge-patch+json', {spec: {holderIdentity: 'EDGE-1'}})
    const lease = new HostLease(leases.leaseApi(), 'edge-1', LEASE_SETTINGS, clock)
    expect(await lease.renew()).to.equal(false)
    expect(lease.failure()).to.equal('Lease smartnat-system/smartnat-edge-1 is held by EDGE-1, not edge-1: two hosts have names that make the same Lease name')
    expect(stored('smartnat-edge-1').spec.holderIdentity).to.equal('EDGE-1')
  })
})
