/**
 * Allocation with several instances: only the allocator Lease's holder writes, it decides from what it
 * wrote even while its cache lags, and on taking over it reads the Services afresh. Against the test
 * API server, with snapshots the test makes stale on purpose.
 */
import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {LOAD_BALANCER_CLASS} from '../../src/lib/mapping/loadbalancer.js'
import type {ServiceResource} from '../../src/lib/mapping/types.js'
import type {Snapshot} from '../../src/lib/plan/model.js'
import {listServices, listSnapshot} from '../../src/lib/source/kube/source.js'
import {kubeEventApi, kubePoolStatusApi, kubeServiceStatusApi} from '../../src/lib/source/kube/writers.js'
import {AllocationWriter, type AllocationCoordination} from '../../src/lib/sync/allocation.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'

describe('allocation decided by the allocator Lease holder', function () {
  let server: ApiServer
  let kc: KubeConfig
  let requests: string[]
  const addressOf = (name: string) => (server.api.get(server.types.services, 'default', name) as unknown as ServiceResource).status?.loadBalancer?.ingress?.[0]?.ip
  const lb = (name: string) =>
    server.api.create(server.types.services, 'default', {metadata: {name}, spec: {type: 'LoadBalancer', loadBalancerClass: LOAD_BALANCER_CLASS, ports: [{name: 'http', port: 80, protocol: 'TCP'}]}})
  const writesOf = (pattern: RegExp) => requests.filter((r) => pattern.test(r)).length
  /** The same creation second for every Service, so that name order decides which is older. */
  const sameAge = (snapshot: Snapshot): Snapshot => ({...snapshot, services: snapshot.services.map((s) => ({...s, metadata: {...s.metadata, creationTimestamp: '2026-01-01T00:00:00Z'}}))})

  const leader = (holds: boolean, term = 1) => ({holds: () => holds, term: () => term})
  const writer = (coordination?: Partial<AllocationCoordination>) =>
    new AllocationWriter({services: kubeServiceStatusApi(kc), pools: kubePoolStatusApi(kc), events: kubeEventApi(kc)}, 'edge-1', false, 8,
      coordination && {leadership: leader(true), listServices: () => listServices(kc), maxAgeMs: 40_000, ...coordination})

  beforeEach(async function () {
    requests = []
    server = await startApiServer({crds: ['crds/mapping.yaml', 'crds/addresspool.yaml'], log: (line) => requests.push(line)})
    kc = new KubeConfig()
    kc.loadFromString(server.kubeconfig())
    server.api.create(server.types.addressPools, undefined, {metadata: {name: 'edge'}, spec: {addresses: ['198.18.0.10-198.18.0.12']}})
  })

  afterEach(async function () {
    await server.stop()
  })

  it('an instance that does not hold the Lease writes no address, no pool status and no Event, and says it follows', async function () {
    lb('a')
    const result = await writer({leadership: leader(false)}).write(await listSnapshot(kc), new Date())
    expect(result).to.include({deciding: false, written: 0, poolsWritten: 0, eventsCreated: 0, pending: 0})
    expect(addressOf('a')).to.equal(undefined)
    expect(writesOf(/^(PATCH|POST) /)).to.equal(0)
  })

  it('decides from the statuses it wrote while its cache still shows them unwritten: no address is recorded twice', async function () {
    lb('b')
    const one = writer({})
    await one.write(sameAge(await listSnapshot(kc)), new Date())
    expect(addressOf('b')).to.equal('198.18.0.10')
    lb('a')
    // A cache that has seen the new Service but not yet b's recorded status; a sorts before b.
    const listed = await listSnapshot(kc)
    const lagging = sameAge({...listed, services: listed.services.map((s) => (s.metadata.name === 'b' ? {...s, status: {}, metadata: {...s.metadata, resourceVersion: String(Number(s.metadata.resourceVersion) - 1)}} : s))})
    await one.write(lagging, new Date())
    expect([addressOf('a'), addressOf('b')]).to.deep.equal(['198.18.0.11', '198.18.0.10'])
  })

  it('on taking over, decides from a fresh list, not from a cache that lacks what the previous holder recorded', async function () {
    lb('old')
    const stale = sameAge(await listSnapshot(kc))
    // The previous holder recorded old's address after this instance's cache last heard of it.
    server.api.patch(server.types.services, 'default', 'old', 'application/merge-patch+json', {status: {loadBalancer: {ingress: [{ip: '198.18.0.10', ipMode: 'Proxy'}]}}}, {status: true})
    lb('new')
    const listed = await listSnapshot(kc)
    const cache = sameAge({...stale, services: [...stale.services, listed.services.find((s) => s.metadata.name === 'new')!]})
    await writer({}).write(cache, new Date())
    expect([addressOf('old'), addressOf('new')]).to.deep.equal(['198.18.0.10', '198.18.0.11'])
  })

  it('a fresh list that fails holds this pass\'s allocations back, and is tried again at the next', async function () {
    lb('a')
    let calls = 0
    const w = writer({listServices: async () => {
      calls++
      if (calls === 1) throw new Error('connection refused')
      return await listServices(kc)
    }})
    const first = await w.write(await listSnapshot(kc), new Date())
    expect(first.errors.map((e) => e.message)).to.deep.equal(['listing Services before allocating as the new allocator: connection refused'])
    expect(addressOf('a')).to.equal(undefined)
    await w.write(await listSnapshot(kc), new Date())
    expect(addressOf('a')).to.equal('198.18.0.10')
    expect(calls).to.equal(2)
  })
})
