/**
 * `smartnat sync` against the API as an allocator: a run takes the allocator Lease where AddressPools
 * exist, allocates, and gives it up; held by a watching instance, the run follows; without pools it
 * asks for no Lease at all. Against the test API server, with a report of a pass that programmed nothing.
 */
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {V1Lease} from '@kubernetes/client-node'
import {expect} from 'chai'
import {openSyncSource} from '../../src/lib/app/sync.js'
import {LOAD_BALANCER_CLASS} from '../../src/lib/mapping/loadbalancer.js'
import type {ServiceResource} from '../../src/lib/mapping/types.js'
import {microTime} from '../../src/lib/source/kube/leases.js'
import type {SyncReport} from '../../src/lib/sync/once.js'
import {ALLOCATOR_LEASE_NAME} from '../../src/lib/sync/allocator-lease.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'

describe('a one-shot sync and the allocator Lease', function () {
  let server: ApiServer
  let dir: string
  let requests: string[]
  const addressOf = (name: string) => (server.api.get(server.types.services, 'default', name) as unknown as ServiceResource).status?.loadBalancer?.ingress?.[0]?.ip

  beforeEach(async function () {
    requests = []
    server = await startApiServer({crds: ['crds/mapping.yaml', 'crds/addresspool.yaml'], log: (line) => requests.push(line)})
    server.api.create(server.types.namespaces, undefined, {metadata: {name: 'smartnat-system'}})
    dir = await mkdtemp(join(tmpdir(), 'smartnat-sync-allocator-'))
    await server.writeKubeconfig(join(dir, 'kubeconfig'))
    server.api.create(server.types.services, 'default', {metadata: {name: 'web'}, spec: {type: 'LoadBalancer', loadBalancerClass: LOAD_BALANCER_CLASS, ports: [{name: 'http', port: 80, protocol: 'TCP'}]}})
  })

  afterEach(async function () {
    await server.stop()
    await rm(dir, {recursive: true, force: true})
  })

  /** One run's writeback, of a pass that programmed nothing on this host. */
  async function run(): Promise<void> {
    const source = await openSyncSource({kubeconfig: join(dir, 'kubeconfig')})
    const snapshot = await source.load()
    const report = {snapshot, plan: {verdicts: [], model: {mappings: []}}, host: {interfaces: []}} as unknown as SyncReport
    await source.publisher!.publish(report, new Date())
  }

  it('with a pool: takes the Lease, allocates, and gives the Lease up', async function () {
    server.api.create(server.types.addressPools, undefined, {metadata: {name: 'edge'}, spec: {addresses: ['198.18.0.10']}})
    await run()
    expect(addressOf('web')).to.equal('198.18.0.10')
    const lease = server.api.get(server.types.leases, 'smartnat-system', ALLOCATOR_LEASE_NAME) as unknown as V1Lease
    expect(lease.spec!.holderIdentity).to.equal('')
  })

  it('with a pool, while a watching instance holds the Lease: follows, and allocates nothing', async function () {
    server.api.create(server.types.addressPools, undefined, {metadata: {name: 'edge'}, spec: {addresses: ['198.18.0.10']}})
    server.api.create(server.types.leases, 'smartnat-system', {
      metadata: {name: ALLOCATOR_LEASE_NAME},
      spec: {holderIdentity: 'edge-2_0123abcd', leaseDurationSeconds: 40, renewTime: microTime(new Date()).toISOString()},
    })
    await run()
    expect(addressOf('web')).to.equal(undefined)
  })

  it('without pools: no allocator Lease request at all', async function () {
    await run()
    expect(requests.filter((r) => r.includes(`/leases/${ALLOCATOR_LEASE_NAME}`))).to.deep.equal([])
    // The host Lease alone is written.
    expect(requests.filter((r) => /^(POST|PUT) .*\/leases/.test(r))).to.have.length(1)
  })
})
