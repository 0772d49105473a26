import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {NOT_RECORDED, withPendingAllocations} from '../../src/lib/allocate/pending.js'
import {DEFAULT_DYNAMIC_PORTS} from '../../src/lib/mapping/dynamic.js'
import type {MappingResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {PlanMemo} from '../../src/lib/plan/memo.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {listSnapshot} from '../../src/lib/source/kube/source.js'
import {kubeEventApi, kubeMappingStatusApi} from '../../src/lib/source/kube/writers.js'
import {MappingAllocationWriter} from '../../src/lib/sync/mapping-allocation.js'
import {writeStatuses} from '../../src/lib/sync/status.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {WEB_SERVICE, serviceManifests} from '../support/mappings.js'

const POOL_ADDRESS = '198.18.0.10'

function host(...addresses: string[]): HostInfo {
  return {interfaces: [{name: 'eth1', addresses: addresses.map((address) => ({address: address as Ipv4, prefixLength: 24}))}]}
}

describe('allocations recorded in Mapping statuses', function () {
  let server: ApiServer
  let kc: KubeConfig
  const stored = (name = 'web') => server.api.get(server.types.mappings, 'default', name) as unknown as MappingResource
  const writer = () => new MappingAllocationWriter(kubeMappingStatusApi(kc), {defaultLoadBalancer: false, events: {api: kubeEventApi(kc), hostName: 'edge-1'}})
  const events = () =>
    (server.api.list(server.types.events, 'default', {}).items as unknown as {type: string; reason: string; message: string; involvedObject: {kind: string; name: string}}[])
      .map((e) => `${e.involvedObject.kind} ${e.involvedObject.name} ${e.type} ${e.reason}: ${e.message}`)
  const pending = (snapshot: Snapshot) => withPendingAllocations(snapshot, {defaultLoadBalancer: false, dynamicPorts: DEFAULT_DYNAMIC_PORTS, allocates: true})
  const snapshot = async () => pending(await listSnapshot(kc))
  const create = (name: string, spec: Record<string, unknown>, creationTimestamp = '2025-01-01T00:00:00Z') =>
    server.api.create(server.types.mappings, 'default', {metadata: {name, creationTimestamp}, spec: {serviceName: 'web', ...spec}})

  beforeEach(async function () {
    server = await startApiServer({crds: ['crds/mapping.yaml', 'crds/addresspool.yaml']})
    kc = new KubeConfig()
    kc.loadFromString(server.kubeconfig())
    server.api.create(server.types.addressPools, undefined, {metadata: {name: 'edge'}, spec: {addresses: [`${POOL_ADDRESS}-198.18.0.11`]}})
    server.createAll(serviceManifests(WEB_SERVICE))
  })

  afterEach(async function () {
    await server.stop()
  })

  it('records an address and a port, writes nothing again, and the next plan serves the Mapping on them like a listed address and port', async function () {
    create('web', {addressPool: 'edge', ports: [{servicePort: 80}]})
    const memo = new PlanMemo()
    const first = await listSnapshot(kc)
    const before = memo.plan(pending(first), host(POOL_ADDRESS), DEFAULT_PLAN_OPTIONS)
    expect(before.verdicts[0]).to.include({valid: false, invalid: NOT_RECORDED})
    expect(await writer().write(await snapshot())).to.include({written: 1, allocated: 1, conflicts: 0, eventsCreated: 1})
    expect(stored().status?.allocated).to.deep.equal({pool: 'edge', addresses: [POOL_ADDRESS], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]})
    expect(await writer().write(await snapshot())).to.include({written: 0, allocated: 0, eventsCreated: 0})
    expect(events()).to.deep.equal([`Mapping web Normal Allocated: allocated ${POOL_ADDRESS} from AddressPool edge, tcp/30000 to servicePort 80`])
    // The same memo, the same Service and EndpointSlice objects: a Mapping whose status only gained status.allocated is planned again.
    const after = memo.plan(pending({...first, mappings: (await listSnapshot(kc)).mappings}), host(POOL_ADDRESS), DEFAULT_PLAN_OPTIONS)
    expect(after.verdicts[0]).to.include({valid: true, invalid: 'no'})
    expect(after.model.mappings.map((m) => m.endpoints.map((e) => `${e.address}:${e.port}/${e.protocol} -> ${e.targetIP}:${e.targetPort}`))).to.deep.equal([[`${POOL_ADDRESS}:30000/tcp -> 10.96.0.20:80`]])
  })

  it('writes only while this instance holds the allocator Lease; without it the Mapping waits for the holder', async function () {
    create('web', {addressPool: 'edge', ports: [{servicePort: 80}]})
    let holds = false
    const led = new MappingAllocationWriter(kubeMappingStatusApi(kc), {defaultLoadBalancer: false, leadership: {holds: () => holds, term: () => 1}})
    expect(await led.write(await snapshot())).to.include({written: 0, allocated: 0})
    expect(stored().status?.allocated).to.equal(undefined)
    holds = true
    expect(await led.write(await snapshot())).to.include({written: 1, allocated: 1})
    expect(stored().status?.allocated).to.deep.include({addresses: [POOL_ADDRESS]})
  })

  it('a pool admitting namespaces by label gives a Mapping of a labelled namespace an address, and none to one without the label', async function () {
    server.api.create(server.types.addressPools, undefined, {
      metadata: {name: 'labelled'}, spec: {addresses: ['198.18.0.20'], namespaceSelector: {matchLabels: {edge: 'yes'}}},
    })
    create('web', {addressPool: 'labelled', ports: [{servicePort: 80}]})
    const unlabelled = {...(await snapshot()), namespaces: [{metadata: {name: 'default', labels: {}}}]}
    expect(await writer().write(unlabelled)).to.include({written: 0, pending: 1})
    const labelled = {...(await snapshot()), namespaces: [{metadata: {name: 'default', labels: {edge: 'yes'}}}]}
    expect(await writer().write(labelled)).to.include({written: 1, allocated: 1})
    expect(stored().status?.allocated).to.deep.include({pool: 'labelled', addresses: ['198.18.0.20']})
  })

  it('a write from a stale read gets 409 and changes nothing: the next round follows what another instance recorded', async function () {
    create('web', {addressPool: 'edge', ports: [{servicePort: 80}]})
    const stale = await snapshot()
    const theirs = {pool: 'edge', addresses: ['198.18.0.11'], ports: [{protocol: 'tcp', servicePort: 80, port: 31000}]}
    server.api.patch(server.types.mappings, 'default', 'web', 'application/merge-patch+json', {status: {allocated: theirs}}, {status: true})
    expect(await writer().write(stale)).to.include({written: 0, conflicts: 1})
    expect(stored().status?.allocated).to.deep.equal(theirs)
    expect(await writer().write(await snapshot())).to.include({written: 0, conflicts: 0})
  })

  it('the per-host writeback and the allocation writer keep each other\'s status keys, whichever writes from a stale read', async function () {
    create('web', {addressPool: 'edge', ports: [{servicePort: 80}]})
    await writer().write(await snapshot())
    const allocated = stored().status?.allocated
    const read = await snapshot()
    const {verdicts} = new PlanMemo().plan(read, host(POOL_ADDRESS), DEFAULT_PLAN_OPTIONS)
    // Another write lands first: the writeback's read is stale, it reads again (409) and patches its own keys.
    server.api.patch(server.types.mappings, 'default', 'web', 'application/merge-patch+json', {status: {conditions: [{type: 'Other', status: 'True', reason: 'X', message: 'x'}]}}, {status: true})
    const written = await writeStatuses(kubeMappingStatusApi(kc), read.mappings, verdicts, host(POOL_ADDRESS), new Date(), 'edge-1')
    expect(written).to.include({patched: 1, conflicts: 0})
    expect(stored().status?.allocated).to.deep.equal(allocated)
    expect(stored().status?.configuredAddresses).to.have.keys([POOL_ADDRESS])
    expect(stored().status?.invalid).to.equal('no')
    // The request changes: the allocation writer replaces status.allocated and nothing else.
    const current = stored()
    server.api.update(server.types.mappings, 'default', 'web', {...current, spec: {...current.spec, ports: [{servicePort: 80}, {servicePort: 80, protocol: 'UDP'}]}})
    expect(await writer().write(await snapshot())).to.include({written: 1})
    expect(stored().status?.allocated?.ports).to.deep.equal([{protocol: 'tcp', servicePort: 80, port: 30000}, {protocol: 'udp', servicePort: 80, port: 30000}])
    expect(stored().status?.configuredAddresses).to.have.keys([POOL_ADDRESS])
    expect(stored().status?.conditions?.map((c) => c.type)).to.include.members(['Valid', 'Ready', 'Other'])
  })

  it('removes the record of a Mapping that lists its address and ports again, and the pool of one that lists its addresses', async function () {
    create('web', {addressPool: 'edge', ports: [{servicePort: 80}]})
    create('dyn', {addresses: ['198.18.0.20'], ports: [{servicePort: 80}]}, '2025-01-02T00:00:00Z')
    await writer().write(await snapshot())
    expect(stored('dyn').status?.allocated).to.deep.equal({addresses: ['198.18.0.20'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]})
    const web = stored()
    server.api.update(server.types.mappings, 'default', 'web', {...web, spec: {...web.spec, addressPool: undefined, addresses: ['198.18.0.21']}})
    const dyn = stored('dyn')
    server.api.update(server.types.mappings, 'default', 'dyn', {...dyn, spec: {...dyn.spec, ports: [{port: 80}]}})
    expect(await writer().write(await snapshot())).to.include({written: 2, released: 1, allocated: 1})
    expect(stored('dyn').status?.allocated).to.equal(undefined)
    // The old pool is written out of the record (merge patch: null), not left behind.
    expect(stored().status?.allocated).to.deep.equal({addresses: ['198.18.0.21'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]})
  })
  it('two instances allocating at once for 30 Mappings end with 30 distinct ports, a race repaired by moving the younger Mapping', async function () {
    const names = Array.from({length: 30}, (_, i) => `m${String(i).padStart(2, '0')}`)
    const at = (i: number) => `2025-01-01T00:${String(i).padStart(2, '0')}:00Z`
    // One instance sees m10..m29 only, the other all of them: both record ports from 30000 on.
    names.slice(10).forEach((name, i) => create(name, {addresses: ['198.18.0.30'], ports: [{servicePort: 80}]}, at(i + 10)))
    const partial = await snapshot()
    names.slice(0, 10).forEach((name, i) => create(name, {addresses: ['198.18.0.30'], ports: [{servicePort: 80}]}, at(i)))
    const full = await snapshot()
    const [one, two] = [writer(), writer()]
    expect(await one.write(partial)).to.include({written: 20})
    // The other decided from a read older than those writes: they win (409), its writes for m00..m09 land.
    expect(await two.write(full)).to.include({written: 10, conflicts: 20})
    const raced = names.map((name) => stored(name).status?.allocated?.ports[0]?.port)
    expect(new Set(raced).size, 'ports recorded twice after the race').to.equal(20)
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all([one.write(await snapshot()), two.write(await snapshot())])
      if (results.every((r) => r.written === 0 && r.conflicts === 0)) break
    }
    const ports = names.map((name) => stored(name).status?.allocated?.ports[0]?.port)
    expect(ports.every((port) => port !== undefined), 'every Mapping has a port').to.equal(true)
    expect(new Set(ports).size, 'distinct ports').to.equal(30)
  })
  it('writes no record for a Mapping that waits with nothing to keep', async function () {
    create('full', {addressPool: 'edge', ports: [{servicePort: 80}]})
    create('full-too', {addressPool: 'edge', ports: [{servicePort: 80}]}, '2025-01-01T00:00:01Z')
    create('waits', {addressPool: 'edge', ports: [{servicePort: 80}]}, '2025-01-02T00:00:00Z')
    create('no-port', {addresses: ['198.18.0.20'], ports: [{servicePort: 80}]}, '2025-01-03T00:00:00Z')
    const narrow = new MappingAllocationWriter(kubeMappingStatusApi(kc), {defaultLoadBalancer: false, dynamicPorts: {first: 40000, last: 40000}})
    create('port-holder', {addresses: ['198.18.0.20'], ports: [{port: 40000}]})
    expect(await narrow.write(await snapshot())).to.include({written: 2, pending: 2})
    expect(stored('waits').status?.allocated).to.equal(undefined)
    expect(stored('no-port').status?.allocated).to.equal(undefined)
  })
})
