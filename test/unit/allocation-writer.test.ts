import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {LOAD_BALANCER_CLASS} from '../../src/lib/mapping/loadbalancer.js'
import type {ServiceResource} from '../../src/lib/mapping/types.js'
import {withServiceExposures} from '../../src/lib/plan/exposures.js'
import {DEFAULT_PLAN_OPTIONS} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {listSnapshot} from '../../src/lib/source/kube/source.js'
import {kubeEventApi, kubePoolStatusApi, kubeServiceStatusApi} from '../../src/lib/source/kube/writers.js'
import {AllocationWriter} from '../../src/lib/sync/allocation.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'

describe('allocation recorded in Service statuses', function () {
  let server: ApiServer
  let kc: KubeConfig
  const writer = () => new AllocationWriter({services: kubeServiceStatusApi(kc), pools: kubePoolStatusApi(kc), events: kubeEventApi(kc)}, 'edge-1', false)
  const snapshot = async () => withServiceExposures(await listSnapshot(kc), false)
  const ingressOf = (name: string) => (server.api.get(server.types.services, 'default', name) as unknown as ServiceResource).status?.loadBalancer?.ingress
  const addressOf = (name: string) => ingressOf(name)?.[0]?.ip
  const reasons = () => (server.api.list(server.types.events, 'default', {}).items as unknown as {reason: string; involvedObject: {name: string}; message: string}[]).map((e) => `${e.involvedObject.name} ${e.reason}: ${e.message}`).sort()
  const lb = (name: string, port = 80, annotations: Record<string, string> = {}) =>
    server.api.create(server.types.services, 'default', {metadata: {name, annotations}, spec: {type: 'LoadBalancer', loadBalancerClass: LOAD_BALANCER_CLASS, ports: [{name: 'http', port, protocol: 'TCP'}]}})

  beforeEach(async function () {
    server = await startApiServer({crds: ['crds/mapping.yaml', 'crds/addresspool.yaml']})
    kc = new KubeConfig()
    kc.loadFromString(server.kubeconfig())
    server.api.create(server.types.addressPools, undefined, {metadata: {name: 'edge'}, spec: {addresses: ['198.18.0.10-198.18.0.11']}})
  })

  afterEach(async function () {
    await server.stop()
  })

  it('records addresses with ipMode Proxy and the ports, counts the pool, and tells a Service left without one why, once', async function () {
    lb('a')
    lb('b', 53)
    lb('c')
    const first = await writer().write(await snapshot(), new Date())
    expect(first).to.include({written: 2, allocated: 2, pending: 1, conflicts: 0})
    expect(ingressOf('a')).to.deep.equal([{ip: '198.18.0.10', ipMode: 'Proxy', ports: [{port: 80, protocol: 'TCP'}]}])
    expect(addressOf('b')).to.equal('198.18.0.11')
    expect(ingressOf('c')).to.equal(undefined)
    expect(reasons()).to.deep.equal([
      'a AddressAllocated: allocated 198.18.0.10 from AddressPool edge',
      'b AddressAllocated: allocated 198.18.0.11 from AddressPool edge',
      'c AllocationFailed: AddressPool edge has no free address',
    ])
    const pool = server.api.get(server.types.addressPools, undefined, 'edge') as unknown as {status: {inUse: number; free: number}}
    expect(pool.status).to.deep.include({inUse: 2, free: 0})
    // The same writer again, on what the API holds now: nothing to write, nothing to tell again.
    const again = writer()
    await again.write(await snapshot(), new Date())
    const quiet = await again.write(await snapshot(), new Date())
    expect(quiet).to.include({written: 0, poolsWritten: 0, eventsCreated: 0})
  })

  it('a write from a stale read gets 409 and changes nothing: another instance decided first', async function () {
    lb('a')
    const stale = await snapshot()
    server.api.patch(server.types.services, 'default', 'a', 'application/merge-patch+json', {status: {loadBalancer: {ingress: [{ip: '198.18.0.11', ipMode: 'Proxy'}]}}}, {status: true})
    const result = await writer().write(stale, new Date())
    expect(result).to.include({written: 0, conflicts: 1})
    expect(addressOf('a')).to.equal('198.18.0.11')
  })

  it('two instances allocating at once for 50 Services end with 50 distinct addresses, a race repaired by moving the younger Service', async function () {
    server.api.update(server.types.addressPools, undefined, 'edge', {...(server.api.get(server.types.addressPools, undefined, 'edge') as object), spec: {addresses: ['198.18.0.0/24']}})
    const names = Array.from({length: 50}, (_, i) => `s${String(i).padStart(2, '0')}`)
    // Each instance sees a different part of the new Services at first, as watches deliver them at their
    // own pace: one decides for s20..s49 alone, the other for all, and both may record one address for
    // two Services; the younger of the two then moves.
    for (const name of names.slice(20)) lb(name)
    const partial = await snapshot()
    for (const name of names.slice(0, 20)) lb(name)
    const [one, two] = [writer(), writer()]
    await Promise.all([one.write(partial, new Date()), two.write(await snapshot(), new Date())])
    // Each goes on from what it reads, until neither has anything to write.
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all([one.write(await snapshot(), new Date()), two.write(await snapshot(), new Date())])
      if (results.every((r) => r.written === 0 && r.conflicts === 0)) break
    }
    const addresses = names.map(addressOf)
    expect(addresses.every((ip) => ip !== undefined), 'every Service has an address').to.equal(true)
    expect(new Set(addresses).size, 'distinct addresses').to.equal(50)
  })

  it('takes an address recorded without ipMode (API servers before Kubernetes 1.30 drop it) as written', async function () {
    lb('a')
    server.api.patch(server.types.services, 'default', 'a', 'application/merge-patch+json', {status: {loadBalancer: {ingress: [{ip: '198.18.0.10', ports: [{port: 80, protocol: 'TCP'}]}]}}}, {status: true})
    expect(await writer().write(await snapshot(), new Date())).to.include({written: 0})
  })

  it('tells a Service that loses its ports to an older Mapping why, once', async function () {
    server.api.create(server.types.mappings, 'default', {
      metadata: {name: 'm', creationTimestamp: '2025-01-01T00:00:00Z'}, spec: {addresses: ['198.18.0.10'], serviceName: 'a', ports: [{port: 80}]},
    })
    // A Mapping's address is never handed out on its own: the Service asks for it.
    lb('a', 80, {'smartnat.aureacentral.com/addresses': '198.18.0.10'})
    const once = writer()
    await once.write(await snapshot(), new Date())
    const recorded = await snapshot()
    const verdicts = plan(recorded, {interfaces: []}, DEFAULT_PLAN_OPTIONS).verdicts
    expect(verdicts.find((v) => v.name === 'svc.a')?.invalid).to.equal('tcp/80 on 198.18.0.10 is already mapped by default/m')
    await once.write(recorded, new Date(), verdicts)
    await once.write(recorded, new Date(), verdicts)
    expect(reasons().filter((line) => line.includes(' Invalid: '))).to.deep.equal(['a Invalid: tcp/80 on 198.18.0.10 is already mapped by default/m'])
  })

  it('releases the address of a Service that stops being a LoadBalancer', async function () {
    lb('a')
    await writer().write(await snapshot(), new Date())
    const current = server.api.get(server.types.services, 'default', 'a') as unknown as {spec: Record<string, unknown>}
    server.api.update(server.types.services, 'default', 'a', {...current, spec: {...current.spec, type: 'ClusterIP', loadBalancerClass: undefined}})
    const result = await writer().write(await snapshot(), new Date())
    expect(result).to.include({released: 1})
    expect(ingressOf('a') ?? []).to.deep.equal([])
    expect(reasons()).to.include('a AddressReleased: released 198.18.0.10: the Service is no longer a LoadBalancer smartnat serves')
  })
})
