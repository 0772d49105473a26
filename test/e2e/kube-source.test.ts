/**
 * The kube source against the test API server over real HTTP: paged lists, watches of all three kinds,
 * relist on 410 Gone, backoff while the server is away, and a clean stop.
 */
import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {KubeSource, listSnapshot, type KubeSourceOptions} from '../../src/lib/source/kube/source.js'
import type {ObjectChange} from '../../src/lib/source/kube/reflector.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {bucketOf} from '../support/apiserver/resources.js'
import {objectKey} from '../support/apiserver/store.js'
import {GatedDelay} from '../support/gated-delay.js'

const CRDS = ['crds/mapping.yaml']

function kubeConfigOf(server: ApiServer): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromString(server.kubeconfig())
  return kc
}

function mappingType(server: ApiServer) {
  return server.types.mappings
}

function createMapping(server: ApiServer, name: string, namespace = 'default', address = '198.18.0.10') {
  return server.api.create(mappingType(server), namespace, {
    metadata: {name},
    spec: {addresses: [address], serviceName: 'web', ports: [{port: 80}]},
  }).object
}

function createService(server: ApiServer, name: string, namespace = 'default') {
  return server.api.create(server.types.services, namespace, {
    metadata: {name},
    spec: {ports: [{port: 80, protocol: 'TCP', targetPort: 8080}]},
  }).object
}

function createSlice(server: ApiServer, name: string, service: string, addresses: string[], namespace = 'default') {
  return server.api.create(server.types.endpointSlices, namespace, {
    metadata: {name, labels: {'kubernetes.io/service-name': service}},
    addressType: 'IPv4',
    endpoints: addresses.map((a) => ({addresses: [a], conditions: {ready: true}})),
    ports: [{port: 8080, protocol: 'TCP'}],
  }).object
}

/** Polls `check` every 10 ms until it returns true; fails after `ms`. */
async function eventually(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

const names = (items: {metadata: {namespace?: string; name?: string}}[]) => items.map((o) => `${o.metadata.namespace}/${o.metadata.name}`)

describe('kube source', function () {
  let server: ApiServer
  let requests: string[]
  let source: KubeSource | undefined

  async function start(options: Parameters<typeof startApiServer>[0] = {}) {
    requests = []
    server = await startApiServer({crds: CRDS, log: (line) => requests.push(line), ...options})
  }

  function newSource(options: KubeSourceOptions = {}): KubeSource {
    source = new KubeSource(kubeConfigOf(server), {delay: (_ms, _signal) => Promise.resolve(), backoff: {random: () => 0}, ...options})
    return source
  }

  const lists = (path: string) => requests.filter((r) => r.startsWith(`GET ${path}?`) && !r.includes('watch=true'))

  afterEach(async function () {
    await source?.stop()
    source = undefined
    await server?.stop()
  })

  it('lists every kind in pages across all namespaces, and listOnce returns the same without watching', async function () {
    await start()
    for (let i = 0; i < 7; i++) createMapping(server, `m${i}`, i % 2 === 0 ? 'default' : 'kube-system', `198.18.0.${10 + i}`)
    for (let i = 0; i < 3; i++) createService(server, `svc${i}`)
    createSlice(server, 'svc0-abc', 'svc0', ['198.19.0.1', '198.19.0.2'])
    const s = newSource({pageSize: 2})
    await s.start()
    const snapshot = s.snapshot()
    expect(names(snapshot.mappings)).to.deep.equal([
      'default/m0', 'default/m2', 'default/m4', 'default/m6', 'kube-system/m1', 'kube-system/m3', 'kube-system/m5',
    ])
    // The seed `kubernetes` Service plus three.
    expect(names(snapshot.services)).to.deep.equal(['default/kubernetes', 'default/svc0', 'default/svc1', 'default/svc2'])
    expect(snapshot.endpointSlices[0]!.endpoints!.map((e) => e.addresses[0])).to.deep.equal(['198.19.0.1', '198.19.0.2'])
    expect(snapshot.mappings[0]!.kind).to.equal('Mapping')
    expect(snapshot.services[0]!.metadata.creationTimestamp).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
    // 7 Mappings at 2 per page take 4 requests, the later ones carrying the continue token.
    const mappingLists = lists('/apis/smartnat.aureacentral.com/v1alpha1/mappings')
    expect(mappingLists).to.have.length(4)
    expect(mappingLists.filter((r) => r.includes('continue='))).to.have.length(3)
    expect(s.synced).to.equal(true)
    expect(s.healthy).to.equal(true)

    await eventually('four watches (Mappings, Services, EndpointSlices, Namespaces)', () => server.openWatches() === 4)
    const watchesBefore = requests.filter((r) => r.includes('watch=true')).length
    const once = await listSnapshot(kubeConfigOf(server), 3)
    expect(once).to.deep.equal(snapshot)
    expect(requests.filter((r) => r.includes('watch=true')).length).to.equal(watchesBefore)
  })

  it("keeps of listed and watched Mappings' metadata only what smartnat reads: no labels, annotations, managedFields or kubectl's last-applied copy", async function () {
    await start()
    const mappings = server.types.mappings
    // What a real API server stores with every object; the test server's own writes do not add it.
    const withBookkeeping = (name: string) => {
      const stored = server.api.get(mappings, 'default', name)
      const metadata = {
        ...stored.metadata,
        labels: {app: 'web'},
        finalizers: ['example.com/keep'],
        annotations: {'example.com/owner': 'team-a', 'kubectl.kubernetes.io/last-applied-configuration': JSON.stringify(stored)},
        managedFields: [{manager: 'kubectl-client-side-apply', operation: 'Update', apiVersion: 'smartnat.aureacentral.com/v1alpha1', fieldsType: 'FieldsV1', fieldsV1: {'f:spec': {}}}],
      }
      server.store.commit(bucketOf(mappings), objectKey('default', name), {...stored, metadata})
    }
    createMapping(server, 'listed')
    withBookkeeping('listed')
    const s = newSource()
    await s.start()
    createMapping(server, 'watched', 'default', '198.18.0.11')
    withBookkeeping('watched')
    await eventually('the watched Mapping with its finalizer', () => s.snapshot().mappings.some((o) => o.metadata.name === 'watched' && o.metadata.finalizers !== undefined))
    const once = await listSnapshot(kubeConfigOf(server))
    for (const snapshot of [s.snapshot(), once]) {
      for (const name of ['listed', 'watched']) {
        const mapping = snapshot.mappings.find((o) => o.metadata.name === name)!
        expect(Object.keys(mapping.metadata).sort(), name).to.deep.equal(['creationTimestamp', 'finalizers', 'generation', 'name', 'namespace', 'resourceVersion', 'uid'])
        expect(mapping.metadata.finalizers, name).to.deep.equal(['example.com/keep'])
        expect(mapping.spec!.serviceName, name).to.be.a('string')
      }
    }
  })

  it('keeps of Services and EndpointSlices only what the planner reads, listed or watched', async function () {
    await start()
    const services = server.types.services
    const slices = server.types.endpointSlices
    // Shaped as a real cluster's: selectors, IP families, pod references, nodes, zones and hints.
    const service = (name: string) => server.api.create(services, 'default', {
      metadata: {name, labels: {app: name}, annotations: {'example.com/owner': 'team-a'}},
      spec: {
        type: 'ClusterIP', selector: {app: name}, ipFamilies: ['IPv4'], ipFamilyPolicy: 'SingleStack', internalTrafficPolicy: 'Cluster',
        sessionAffinity: 'ClientIP', sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}},
        ports: [{name: 'http', port: 80, protocol: 'TCP', targetPort: 8080}],
      },
    })
    const slice = (name: string) => server.api.create(slices, 'default', {
      metadata: {name: `${name}-x1`, labels: {'kubernetes.io/service-name': name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io'}, ownerReferences: [{apiVersion: 'v1', kind: 'Service', name, uid: 'u1'}]},
      addressType: 'IPv4',
      endpoints: [{addresses: ['198.19.0.1'], conditions: {ready: true, serving: true, terminating: false}, nodeName: 'node-1', zone: 'a', targetRef: {kind: 'Pod', name: `${name}-pod`, namespace: 'default'}, hints: {forZones: [{name: 'a'}]}}],
      ports: [{name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http'}],
    })
    service('listed')
    slice('listed')
    const s = newSource()
    await s.start()
    service('watched')
    slice('watched')
    const named = (list: {metadata: {name?: string}}[], name: string) => list.some((o) => o.metadata.name === name)
    await eventually('the watched ones', () => named(s.snapshot().services, 'watched') && named(s.snapshot().endpointSlices, 'watched-x1'))
    const once = await listSnapshot(kubeConfigOf(server))
    for (const snapshot of [s.snapshot(), once]) {
      for (const name of ['listed', 'watched']) {
        const kept = snapshot.services.find((o) => o.metadata.name === name)!
        expect(Object.keys(kept.metadata).sort(), name).to.deep.equal(['creationTimestamp', 'name', 'namespace', 'resourceVersion', 'uid'])
        expect(kept.spec, name).to.deep.equal({
          // clusterIPs only repeated clusterIP (a single-stack Service): left out.
          type: 'ClusterIP', clusterIP: kept.spec!.clusterIP,
          sessionAffinity: 'ClientIP', sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}},
          // Of each port what Mappings are matched by: not targetPort, which nothing reads.
          ports: [{name: 'http', port: 80, protocol: 'TCP'}],
        })
        const keptSlice = snapshot.endpointSlices.find((o) => o.metadata.name === `${name}-x1`)!
        expect(keptSlice.metadata, name).to.deep.equal({namespace: 'default', name: `${name}-x1`, resourceVersion: keptSlice.metadata.resourceVersion, labels: {'kubernetes.io/service-name': name}})
        expect(keptSlice.metadata.resourceVersion, name).to.be.a('string')
        expect(keptSlice.endpoints, name).to.deep.equal([{addresses: ['198.19.0.1'], conditions: {ready: true, serving: true, terminating: false}}])
        expect(keptSlice.ports, name).to.deep.equal([{name: 'http', port: 8080, protocol: 'TCP'}])
        expect(keptSlice.addressType, name).to.equal('IPv4')
      }
    }
  })

  it('picks up add, update and delete of Mappings, Services and EndpointSlices from the watch', async function () {
    await start()
    const s = newSource()
    const changes: ObjectChange[] = []
    s.onChange((c) => changes.push(c))
    await s.start()
    await eventually('four watches (Mappings, Services, EndpointSlices, Namespaces)', () => server.openWatches() === 4)
    changes.length = 0

    createMapping(server, 'web')
    createService(server, 'web')
    createSlice(server, 'web-1', 'web', ['198.19.0.1'])
    await eventually('adds', () => changes.length === 3)
    expect(names(s.snapshot().mappings)).to.deep.equal(['default/web'])

    const mappings = mappingType(server)
    server.api.patch(mappings, 'default', 'web', 'application/merge-patch+json', {spec: {addresses: ['198.18.0.20']}})
    server.api.patch(server.types.services, 'default', 'web', 'application/merge-patch+json', {spec: {sessionAffinity: 'ClientIP'}})
    server.api.patch(server.types.endpointSlices, 'default', 'web-1', 'application/merge-patch+json', {
      endpoints: [{addresses: ['198.19.0.1'], conditions: {ready: true}}, {addresses: ['198.19.0.2'], conditions: {ready: true}}],
    })
    await eventually('updates', () => changes.length === 6)
    const snapshot = s.snapshot()
    expect(snapshot.mappings[0]!.spec!.addresses).to.deep.equal(['198.18.0.20'])
    expect(snapshot.mappings[0]!.metadata.generation).to.equal(2)
    expect(snapshot.services.find((x) => x.metadata.name === 'web')!.spec!.sessionAffinity).to.equal('ClientIP')
    expect(snapshot.endpointSlices[0]!.endpoints).to.have.length(2)

    server.api.delete(mappings, 'default', 'web')
    server.api.delete(server.types.services, 'default', 'web')
    server.api.delete(server.types.endpointSlices, 'default', 'web-1')
    await eventually('deletes', () => changes.length === 9)
    // Each kind has a watch of its own, so within a phase the three kinds may arrive in any order;
    // the phases themselves are ordered, since each waits for the one before.
    const seen = changes.map((c) => `${c.type} ${c.kind} ${c.namespace}/${c.name}`)
    const phases = [seen.slice(0, 3), seen.slice(3, 6), seen.slice(6, 9)].map((phase) => [...phase].sort())
    expect(phases).to.deep.equal([
      ['ADDED EndpointSlice default/web-1', 'ADDED Mapping default/web', 'ADDED Service default/web'],
      ['MODIFIED EndpointSlice default/web-1', 'MODIFIED Mapping default/web', 'MODIFIED Service default/web'],
      ['DELETED EndpointSlice default/web-1', 'DELETED Mapping default/web', 'DELETED Service default/web'],
    ])
    const after = s.snapshot()
    expect(after.mappings).to.deep.equal([])
    expect(names(after.services)).to.deep.equal(['default/kubernetes'])
    expect(after.endpointSlices).to.deep.equal([])
  })

  it('relists when the watch resumes from a resourceVersion the server no longer keeps (410 Gone)', async function () {
    // A history of 3 events: changes to Services push the Mappings watch's resourceVersion out of it.
    await start({historySize: 3, bookmarkIntervalMs: 60_000})
    createMapping(server, 'first')
    const s = newSource({watchTimeoutSeconds: 1})
    const changes: ObjectChange[] = []
    s.onChange((c) => changes.push(c))
    await s.start()
    const mappingPath = '/apis/smartnat.aureacentral.com/v1alpha1/mappings'
    expect(lists(mappingPath)).to.have.length(1)
    await eventually('four watches (Mappings, Services, EndpointSlices, Namespaces)', () => server.openWatches() === 4)
    for (let i = 0; i < 5; i++) createService(server, `churn${i}`)
    // The server ends each watch after a second; the Mappings watch then asks for an expired resourceVersion.
    await eventually('a relist of Mappings', () => lists(mappingPath).length >= 2, 8000)
    expect(s.lastError).to.equal(undefined)
    createMapping(server, 'second')
    await eventually('the watch after the relist', () => changes.some((c) => c.name === 'second'), 8000)
    expect(names(s.snapshot().mappings)).to.deep.equal(['default/first', 'default/second'])
    expect(names(s.snapshot().services)).to.include('default/churn4')
  })

  it('keeps its cache and reports unready while the server is away, backing off exponentially up to the bound', async function () {
    await start()
    const port = server.port
    createMapping(server, 'kept')
    const gate = new GatedDelay()
    const s = newSource({delay: gate.delay, backoff: {initialMs: 100, maxMs: 800, jitter: 0}})
    await s.start()
    expect(s.healthy).to.equal(true)

    await server.stop()
    // Each of the four kinds fails in turn and waits; let them retry a few rounds against the dead port.
    for (let round = 0; round < 6; round++) {
      await eventually('all kinds waiting', () => gate.pending === 4)
      if (round >= 1) {
        expect(s.healthy).to.equal(false)
        expect(s.lastError?.message).to.match(/ECONNREFUSED/)
      }
      gate.releaseAll()
    }
    await eventually('all kinds waiting', () => gate.pending === 4)
    expect(s.synced).to.equal(true)
    expect(s.healthy).to.equal(false)
    expect(names(s.snapshot().mappings)).to.deep.equal(['default/kept'])
    expect(s.health().kinds.Mapping.lastError).to.match(/ECONNREFUSED/)
    expect(Math.max(...gate.requested)).to.equal(800)
    expect([...new Set(gate.requested)].sort((a, b) => a - b)).to.deep.equal([100, 200, 400, 800])

    // The server comes back with different contents: the relist replaces the cache.
    await start({port})
    createMapping(server, 'new')
    gate.releaseAll()
    await eventually('healthy again', () => s.healthy)
    await eventually('the new contents', () => names(s.snapshot().mappings).join() === 'default/new')
    expect(s.lastError).to.equal(undefined)
  })

  it('stops cleanly: watches end, pending waits end, no timers are left', async function () {
    await start()
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
    const s = newSource({delay: undefined, backoff: {initialMs: 60_000, maxMs: 60_000}})
    await s.start()
    await eventually('four watches (Mappings, Services, EndpointSlices, Namespaces)', () => server.openWatches() === 4)
    await s.stop()
    await eventually('watches closed on the server', () => server.openWatches() === 0)

    // Stopped while waiting out a failure: the real timer is cleared at once.
    const waiting = newSource({delay: undefined, backoff: {initialMs: 60_000, maxMs: 60_000}})
    const address = server.port
    await server.stop()
    const started = waiting.start()
    await eventually('a failure', () => waiting.lastError !== undefined)
    const t0 = Date.now()
    await waiting.stop()
    await started
    expect(Date.now() - t0).to.be.lessThan(1000)
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).to.be.at.most(timersBefore)
    await start({port: address})
  })
})
