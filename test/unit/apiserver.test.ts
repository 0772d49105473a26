/**
 * The test API server driven by @kubernetes/client-node over real HTTP: CRUD of Mappings, the status
 * subresource, generation, conflicts, paging, watches (with 410 Gone and bookmarks) and schema validation.
 */
import {
  ApiException,
  CoreV1Api,
  CustomObjectsApi,
  DiscoveryV1Api,
  KubeConfig,
  makeInformer,
  PatchStrategy,
  setHeaderOptions,
  Watch,
} from '@kubernetes/client-node'
import {expect} from 'chai'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'

const GROUP = 'smartnat.aureacentral.com'
const VERSION = 'v1alpha1'
const PLURAL = 'mappings'
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)
const jsonPatch = setHeaderOptions('Content-Type', PatchStrategy.JsonPatch)

interface Mapping {
  apiVersion: string
  kind: string
  metadata: {name: string; namespace?: string; resourceVersion?: string; generation?: number; uid?: string; labels?: Record<string, string>}
  spec: Record<string, unknown>
  status?: Record<string, unknown>
}

function mapping(name: string, spec: Record<string, unknown> = {}, labels?: Record<string, string>): Mapping {
  return {
    apiVersion: `${GROUP}/${VERSION}`,
    kind: 'Mapping',
    metadata: {name, ...(labels ? {labels} : {})},
    spec: {addresses: ['198.18.0.10'], serviceName: 'web', mode: 'service', ports: [{port: 80, protocol: 'TCP'}], ...spec},
  }
}

/** The HTTP code and Status body of a failed call. */
async function failure(call: Promise<unknown>): Promise<{code: number; body: {reason?: string; message?: string; details?: {causes?: {field?: string; message: string}[]}}}> {
  try {
    await call
  } catch (err) {
    if (!(err instanceof ApiException)) throw err
    const body = typeof err.body === 'string' ? JSON.parse(err.body) : err.body
    return {code: err.code, body}
  }
  throw new Error('expected the call to fail')
}

interface SeenEvent {
  type: string
  name?: string
  rv?: string
  code?: number
  reason?: string
}

/**
 * Opens a watch and collects its events until `until` is satisfied. `opened` settles once the server
 * has answered (it subscribes the watch before it answers), `closed` once the watch has ended;
 * a watch that never satisfies `until` ends with the test's timeout.
 */
function watchEvents(kc: KubeConfig, path: string, query: Record<string, string | boolean>, until: (events: SeenEvent[]) => boolean) {
  const events: SeenEvent[] = []
  let abort: AbortController | undefined
  let ended: unknown = 'open'
  let settleClosed: () => void = () => undefined
  const closed = new Promise<void>((resolve) => (settleClosed = resolve))
  let opened: Promise<unknown> = Promise.resolve()
  const done = new Promise<SeenEvent[]>((resolve, reject) => {
    const check = () => {
      if (until(events)) {
        abort?.abort()
        resolve(events)
      }
    }
    opened = new Watch(kc)
      .watch(path, query, (type, obj: {metadata?: {name?: string; resourceVersion?: string}; code?: number; reason?: string}) => {
        events.push({type, name: obj.metadata?.name, rv: obj.metadata?.resourceVersion, code: obj.code, reason: obj.reason})
        check()
      }, (err) => {
        ended = err
        settleClosed()
        check()
      })
      .then((controller) => {
        abort = controller
      }, reject)
  })
  return {done, opened, closed, ended: () => ended}
}

describe('test API server with @kubernetes/client-node', function () {
  let server: ApiServer
  let kc: KubeConfig
  let custom: CustomObjectsApi
  const ns = 'default'
  const path = `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`

  beforeEach(async function () {
    server = await startApiServer({crds: ['crds/mapping.yaml'], bookmarkIntervalMs: 100})
    kc = new KubeConfig()
    kc.loadFromString(server.kubeconfig())
    custom = kc.makeApiClient(CustomObjectsApi)
  })

  afterEach(async function () {
    await server.stop()
  })

  const create = (body: Mapping) => custom.createNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, body}) as Promise<Mapping>
  const get = (name: string) => custom.getNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name}) as Promise<Mapping>

  it('creates and lists Mappings with uid, generation 1 and increasing resourceVersions', async function () {
    const a = await create(mapping('a'))
    const b = await create(mapping('b'))
    expect(a.metadata.uid).to.match(/^[0-9a-f-]{36}$/)
    expect(a.metadata.generation).to.equal(1)
    expect(Number(b.metadata.resourceVersion)).to.be.greaterThan(Number(a.metadata.resourceVersion))
    const list = (await custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL})) as {items: Mapping[]; metadata: {resourceVersion: string}}
    expect(list.items.map((m) => m.metadata.name)).to.deep.equal(['a', 'b'])
    expect(list.metadata.resourceVersion).to.equal(b.metadata.resourceVersion)
    const again = await failure(create(mapping('a')))
    expect(again.code).to.equal(409)
    expect(again.body.reason).to.equal('AlreadyExists')
  })

  it('merge-patches status through the subresource without touching spec or generation', async function () {
    await create(mapping('web'))
    const patched = (await custom.patchNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web',
      body: {spec: {serviceName: 'ignored'}, status: {invalid: 'no', configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.200.11']}}}},
    }, mergePatch)) as Mapping
    expect(patched.status).to.deep.equal({invalid: 'no', configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.200.11']}}})
    expect(patched.spec.serviceName).to.equal('web')
    expect(patched.metadata.generation).to.equal(1)
    const second = (await custom.patchNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web',
      body: {status: {configuredAddresses: {'198.18.0.11': {podIPs: []}}}},
    }, mergePatch)) as Mapping
    expect(Object.keys(second.status!.configuredAddresses as object).sort()).to.deep.equal(['198.18.0.10', '198.18.0.11'])
  })

  it('bumps generation on spec changes only, and ignores status written to the main resource', async function () {
    await create(mapping('web'))
    const spec = (await custom.patchNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web',
      body: {spec: {serviceName: 'other'}, status: {invalid: 'sneaked in'}},
    }, mergePatch)) as Mapping
    expect(spec.metadata.generation).to.equal(2)
    expect(spec.status).to.equal(undefined)
    const labels = (await custom.patchNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web',
      body: [{op: 'add', path: '/metadata/labels', value: {tier: 'edge'}}],
    }, jsonPatch)) as Mapping
    expect(labels.metadata.generation).to.equal(2)
    expect(labels.metadata.labels).to.deep.equal({tier: 'edge'})
    const status = (await custom.patchNamespacedCustomObjectStatus({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web', body: {status: {invalid: 'no'}},
    }, mergePatch)) as Mapping
    expect(status.metadata.generation).to.equal(2)
    expect(Number(status.metadata.resourceVersion)).to.be.greaterThan(Number(labels.metadata.resourceVersion))
  })

  it('writes nothing when an update changes nothing', async function () {
    const created = await create(mapping('web'))
    const same = (await custom.patchNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web', body: {spec: {serviceName: 'web'}},
    }, mergePatch)) as Mapping
    expect(same.metadata.resourceVersion).to.equal(created.metadata.resourceVersion)
  })

  it('answers 409 Conflict to an update with a stale resourceVersion', async function () {
    const stale = await create(mapping('web'))
    const fresh = {...stale, spec: {...stale.spec, serviceName: 'first'}}
    await custom.replaceNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web', body: fresh})
    const lost = await failure(custom.replaceNamespacedCustomObject({
      group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web', body: {...stale, spec: {...stale.spec, serviceName: 'second'}},
    }))
    expect(lost.code).to.equal(409)
    expect(lost.body.reason).to.equal('Conflict')
    expect(lost.body.message).to.equal(
      'Operation cannot be fulfilled on mappings.smartnat.aureacentral.com "web": the object has been modified; please apply your changes to the latest version and try again',
    )
    expect((await get('web')).spec.serviceName).to.equal('first')
  })

  it('rejects a Mapping that breaks the schema with 422 naming each field', async function () {
    const bad = mapping('bad', {addresses: ['198.18.0.300'], mode: 'nat', ports: [{port: 70000, protocol: 'ip'}]})
    const {code, body} = await failure(create(bad))
    expect(code).to.equal(422)
    expect(body.reason).to.equal('Invalid')
    expect(body.details?.causes?.map((c) => c.field)).to.have.members([
      'spec.addresses[0]', 'spec.mode', 'spec.ports[0].port', 'spec.ports[0].protocol',
    ])
    expect(body.message).to.contain('spec.ports[0].port: Invalid value: 70000: spec.ports[0].port in body should be less than or equal to 65535')
    const missing = await failure(create({...mapping('none'), spec: {addresses: ['198.18.0.10']}}))
    expect(missing.body.details?.causes?.map((c) => `${c.field}: ${c.message}`)).to.have.members([
      'spec.serviceName: Required value', 'spec.ports: Required value',
    ])
  })

  it('accepts the original product manifest, protocol in any case', async function () {
    const original = await create(mapping('original', {allowedSources: ['198.18.100.0/24', '198.18.200.7'], ports: [{port: 8080, protocol: 'tcp', servicePort: 8080}, {port: 53, protocol: 'Udp'}]}))
    expect(original.spec.ports).to.deep.equal([{port: 8080, protocol: 'tcp', servicePort: 8080}, {port: 53, protocol: 'Udp'}])
  })

  it('pages a list with limit and continue at one consistent resourceVersion', async function () {
    for (const name of ['m1', 'm2', 'm3', 'm4', 'm5']) await create(mapping(name))
    const list = (opts: {limit?: number; _continue?: string}) =>
      custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, ...opts}) as Promise<{items: Mapping[]; metadata: {continue?: string; remainingItemCount?: number; resourceVersion: string}}>
    const first = await list({limit: 2})
    expect(first.items.map((m) => m.metadata.name)).to.deep.equal(['m1', 'm2'])
    expect(first.metadata.remainingItemCount).to.equal(3)
    await create(mapping('m0'))
    await custom.deleteNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'm4'})
    const second = await list({limit: 2, _continue: first.metadata.continue})
    const third = await list({limit: 2, _continue: second.metadata.continue})
    expect(second.items.map((m) => m.metadata.name)).to.deep.equal(['m3', 'm4'])
    expect(third.items.map((m) => m.metadata.name)).to.deep.equal(['m5'])
    expect(third.metadata.continue).to.equal(undefined)
    expect(third.metadata.resourceVersion).to.equal(first.metadata.resourceVersion)
  })

  it('answers 410 Expired to a continue token older than the retained history', async function () {
    for (const name of ['m1', 'm2', 'm3']) await create(mapping(name))
    const first = (await custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, limit: 1})) as {metadata: {continue: string}}
    await create(mapping('m4'))
    server.store.compact()
    const {code, body} = await failure(custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, limit: 1, _continue: first.metadata.continue}))
    expect(code).to.equal(410)
    expect(body.reason).to.equal('Expired')
  })

  it('filters lists by label and field selectors', async function () {
    await create(mapping('a', {}, {tier: 'edge'}))
    await create(mapping('b', {}, {tier: 'core'}))
    await create(mapping('c'))
    const names = async (opts: {labelSelector?: string; fieldSelector?: string}) =>
      ((await custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, ...opts})) as {items: Mapping[]}).items.map((m) => m.metadata.name)
    expect(await names({labelSelector: 'tier=edge'})).to.deep.equal(['a'])
    expect(await names({labelSelector: 'tier in (edge,core)'})).to.deep.equal(['a', 'b'])
    expect(await names({labelSelector: '!tier'})).to.deep.equal(['c'])
    expect(await names({labelSelector: 'tier,tier!=edge'})).to.deep.equal(['b'])
    expect(await names({fieldSelector: 'metadata.name=c'})).to.deep.equal(['c'])
    expect(await names({fieldSelector: 'metadata.name!=c,metadata.namespace=default'})).to.deep.equal(['a', 'b'])
    const unsupported = await failure(names({fieldSelector: 'spec.serviceName=web'}))
    expect(unsupported.code).to.equal(400)
    expect(unsupported.body.message).to.equal('field label not supported: spec.serviceName')
  })

  it('watches from a resourceVersion: ADDED, MODIFIED, DELETED in order, nothing older', async function () {
    const before = await create(mapping('old'))
    const watch = watchEvents(kc, path, {resourceVersion: before.metadata.resourceVersion!}, (e) => e.some((x) => x.type === 'DELETED'))
    await watch.opened
    await create(mapping('web'))
    await custom.patchNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web', body: {spec: {serviceName: 'x'}}}, mergePatch)
    await custom.deleteNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web'})
    const events = await watch.done
    expect(events.map((e) => `${e.type} ${e.name}`)).to.deep.equal(['ADDED web', 'MODIFIED web', 'DELETED web'])
    const rvs = events.map((e) => Number(e.rv))
    expect(rvs).to.deep.equal([...rvs].sort((a, b) => a - b))
    expect(rvs[0]).to.be.greaterThan(Number(before.metadata.resourceVersion))
  })

  it('replays events that happened between a list and the watch that follows it', async function () {
    const list = (await custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL})) as {metadata: {resourceVersion: string}}
    await create(mapping('late'))
    const events = await watchEvents(kc, path, {resourceVersion: list.metadata.resourceVersion}, (e) => e.length >= 1).done
    expect(events.map((e) => `${e.type} ${e.name}`)).to.deep.equal(['ADDED late'])
  })

  it('sends a 410 Expired ERROR event to a watch from a compacted resourceVersion', async function () {
    const old = await create(mapping('web'))
    server.store.setHistorySize(2)
    for (const name of ['a', 'b', 'c']) await create(mapping(name))
    const events = await watchEvents(kc, path, {resourceVersion: old.metadata.resourceVersion!}, (e) => e.length >= 1).done
    expect(events).to.have.length(1)
    expect(events[0]).to.include({type: 'ERROR', code: 410, reason: 'Expired'})
  })

  it('sends BOOKMARK events when asked to', async function () {
    const created = await create(mapping('web'))
    const events = await watchEvents(kc, path, {resourceVersion: created.metadata.resourceVersion!, allowWatchBookmarks: true}, (e) => e.some((x) => x.type === 'BOOKMARK')).done
    expect(events.find((e) => e.type === 'BOOKMARK')?.rv).to.equal(created.metadata.resourceVersion)
  })

  it('ends open watches when the server stops', async function () {
    const watch = watchEvents(kc, path, {}, () => false)
    watch.done.catch(() => undefined)
    await watch.opened
    expect(server.openWatches()).to.equal(1)
    await server.stop()
    await watch.closed
    expect(watch.ended()).to.equal(null)
    server = await startApiServer()
  })

  it('listens again on the same port after a restart, and a watch resumes from before it', async function () {
    const before = await create(mapping('web'))
    await server.stop()
    server.api.patch(server.registry.find(GROUP, VERSION, PLURAL)!, ns, 'web', 'application/merge-patch+json', {spec: {serviceName: 'moved'}})
    await server.listenAgain()
    expect((await get('web')).spec.serviceName).to.equal('moved')
    const events = await watchEvents(kc, path, {resourceVersion: before.metadata.resourceVersion!}, (e) => e.length >= 1).done
    expect(events.map((e) => `${e.type} ${e.name}`)).to.deep.equal(['MODIFIED web'])
  })

  it('comes back onto a new resourceVersion history: the same objects, new resourceVersions, 410 for every older one', async function () {
    const web = await create(mapping('web'))
    const other = await create(mapping('other'))
    const list = (await custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, limit: 1})) as {metadata: {resourceVersion: string; continue?: string}}
    await server.stop()
    await server.listenAgain({newHistory: true})
    const again = await get('web')
    expect(again.metadata).to.include({uid: web.metadata.uid, generation: 1})
    expect(again.spec).to.deep.equal(web.spec)
    const oldRvs = [web, other].map((m) => Number(m.metadata.resourceVersion))
    expect(Number(again.metadata.resourceVersion)).to.be.greaterThan(Math.max(...oldRvs, Number(list.metadata.resourceVersion)))
    for (const rv of [...oldRvs, Number(list.metadata.resourceVersion)]) {
      const events = await watchEvents(kc, path, {resourceVersion: String(rv)}, (e) => e.length >= 1).done
      expect(events, `a watch from ${rv}`).to.have.length(1)
      expect(events[0]).to.include({type: 'ERROR', code: 410, reason: 'Expired'})
    }
    const expired = await failure(custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, limit: 1, _continue: list.metadata.continue!}))
    expect(expired.code).to.equal(410)
    // A watch from the new history's resourceVersion sees what happens next.
    const watch = watchEvents(kc, path, {resourceVersion: again.metadata.resourceVersion!}, (e) => e.length >= 1)
    await new Promise((r) => setTimeout(r, 50))
    await create(mapping('late'))
    expect((await watch.done).map((e) => `${e.type} ${e.name}`)).to.deep.equal(['ADDED late'])
  })

  it('keeps a client-node informer in sync, relisting after a 410 on re-watch', async function () {
    await create(mapping('before'))
    const seen: string[] = []
    let lists = 0
    const listFn = () => {
      lists++
      return custom.listNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL}) as never
    }
    const informer = makeInformer<Mapping & {metadata: {name: string}}>(kc, path, listFn)
    informer.on('add', (m) => see(`add ${m.metadata.name}`))
    informer.on('update', (m) => see(`update ${m.metadata.name} ${String(m.spec.serviceName)}`))
    informer.on('delete', (m) => see(`delete ${m.metadata.name}`))
    // Each handler's entry settles whoever waits for it: nothing here waits for a time.
    const waiting = new Map<string, () => void>()
    const see = (entry: string) => {
      seen.push(entry)
      waiting.get(entry)?.()
    }
    const waitFor = (entry: string) => (seen.includes(entry) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(entry, resolve)))
    await informer.start()
    try {
      await waitFor('add before')
      await create(mapping('live'))
      await waitFor('add live')
      // `live` came after the list, so through the watch: it is open.
      expect(server.openWatches()).to.equal(1)
      expect(lists).to.equal(1)
      // Drop the watch and change things in the same tick, before the informer can re-watch, then forget
      // the history: its re-watch from the old resourceVersion gets 410 and only a relist can catch up.
      const type = server.registry.find(GROUP, VERSION, PLURAL)!
      server.closeWatches()
      server.api.delete(type, ns, 'before')
      server.api.patch(type, ns, 'live', 'application/merge-patch+json', {spec: {serviceName: 'moved'}})
      server.store.setHistorySize(0)
      await waitFor('delete before')
      await waitFor('update live moved')
    } finally {
      await informer.stop()
    }
    expect(lists).to.equal(2)
    expect(informer.list().map((m) => m.metadata.name)).to.deep.equal(['live'])
  })

  it('serves Services with allocated cluster IPs and EndpointSlices with selectors', async function () {
    const core = kc.makeApiClient(CoreV1Api)
    const discovery = kc.makeApiClient(DiscoveryV1Api)
    const svc = await core.createNamespacedService({namespace: ns, body: {metadata: {name: 'web'}, spec: {ports: [{port: 80}]}}})
    expect(svc.spec?.clusterIP).to.match(/^10\.9[6-9]\.\d+\.\d+$/)
    expect(svc.spec?.ports?.[0]).to.include({port: 80, protocol: 'TCP', targetPort: 80})
    await discovery.createNamespacedEndpointSlice({
      namespace: ns,
      body: {metadata: {name: 'web-abc', labels: {'kubernetes.io/service-name': 'web'}}, addressType: 'IPv4', endpoints: [{addresses: ['198.19.200.11'], conditions: {ready: true}}], ports: [{port: 8080}]},
    })
    const slices = await discovery.listNamespacedEndpointSlice({namespace: ns, labelSelector: 'kubernetes.io/service-name=web'})
    expect(slices.items.map((s) => s.endpoints[0]?.addresses)).to.deep.equal([['198.19.200.11']])
    const missing = await failure(core.createNamespacedService({namespace: 'nowhere', body: {metadata: {name: 'web'}, spec: {ports: [{port: 80}]}}}))
    expect(missing.code).to.equal(404)
    expect(missing.body.message).to.equal('namespaces "nowhere" not found')
  })
  it('turns label changes into ADDED and DELETED for a watch with a label selector', async function () {
    const created = await create(mapping('web'))
    const watch = watchEvents(kc, path, {resourceVersion: created.metadata.resourceVersion!, labelSelector: 'tier=edge'}, (e) => e.length >= 2)
    await watch.opened
    const patch = (labels: unknown) => custom.patchNamespacedCustomObject({group: GROUP, version: VERSION, namespace: ns, plural: PLURAL, name: 'web', body: {metadata: {labels}}}, mergePatch)
    await patch({tier: 'edge'})
    await patch({tier: null})
    expect((await watch.done).map((e) => `${e.type} ${e.name}`)).to.deep.equal(['ADDED web', 'DELETED web'])
  })
})

/** An object or Status as the raw API returns it, read only where the tests look. */
interface Reply {
  message?: string
  metadata: {deletionTimestamp?: string}
  spec: {ports: unknown[]}
}

interface AggregatedDiscovery {
  items: {metadata: {name: string}; versions: {resources: Record<string, unknown>[]}[]}[]
}

interface Table {
  kind: string
  columnDefinitions: {name: string}[]
  rows: {cells: unknown[]; object: Record<string, unknown>}[]
}

describe('test API server over raw HTTP', function () {
  let server: ApiServer

  beforeEach(async function () {
    server = await startApiServer({crds: ['crds/mapping.yaml']})
  })

  afterEach(async function () {
    await server.stop()
  })

  const call = async <T = Reply>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const res = await fetch(`${server.url}${path}`, {
      method,
      headers: {'Content-Type': 'application/json', ...headers},
      body: body === undefined ? undefined : JSON.stringify(body),
    })
    return {status: res.status, type: res.headers.get('content-type'), warning: res.headers.get('warning'), body: (await res.json()) as T}
  }
  const mappings = '/apis/smartnat.aureacentral.com/v1alpha1/namespaces/default/mappings'

  it('answers aggregated discovery when asked first, legacy discovery otherwise', async function () {
    const aggregated = await call<AggregatedDiscovery>('GET', '/apis', undefined, {Accept: 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json'})
    expect(aggregated.type).to.equal('application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList')
    const group = aggregated.body.items.find((g) => g.metadata.name === 'smartnat.aureacentral.com')
    expect(group?.versions[0]?.resources[0]).to.include({resource: 'mappings', scope: 'Namespaced', singularResource: 'mapping'})
    const legacy = await call<{groups: {name: string}[]}>('GET', '/apis', undefined, {Accept: 'application/json'})
    expect(legacy.type).to.equal('application/json')
    expect(legacy.body.groups.map((g) => g.name)).to.include.members(['discovery.k8s.io', 'apiextensions.k8s.io', 'smartnat.aureacentral.com'])
    const resources = await call<{resources: {name: string}[]}>('GET', '/apis/smartnat.aureacentral.com/v1alpha1')
    expect(resources.body.resources.map((r) => r.name)).to.deep.equal(['mappings', 'mappings/status'])
    const protobufOnly = await call('GET', `${mappings}`, undefined, {Accept: 'application/vnd.kubernetes.protobuf'})
    expect(protobufOnly.status).to.equal(406)
  })

  it('prints Tables with the CRD printer columns, showing the first port like kube-apiserver', async function () {
    await call('POST', mappings, {apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', metadata: {name: 'web'}, spec: {addresses: ['198.18.0.10', '198.18.0.11'], serviceName: 'web', ports: [{port: 80}, {port: 443}]}})
    await call('PATCH', `${mappings}/web/status`, {status: {conditions: [{type: 'Ready', status: 'False'}, {type: 'Valid', status: 'True'}]}}, {'Content-Type': 'application/merge-patch+json'})
    const table = await call<Table>('GET', mappings, undefined, {Accept: 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json'})
    expect(table.body.kind).to.equal('Table')
    expect(table.body.columnDefinitions.map((c) => c.name)).to.deep.equal(['Name', 'Addresses', 'Service', 'Ports', 'Valid', 'Invalid', 'Allocated-Addresses', 'Allocated-Ports', 'Age'])
    expect(table.body.rows[0]?.cells.slice(0, 6)).to.deep.equal(['web', '["198.18.0.10","198.18.0.11"]', 'web', '80', 'True', null])
    expect(table.body.rows[0]?.object).to.include({kind: 'PartialObjectMetadata'})
  })

  it('keeps an object with finalizers until the last one is removed', async function () {
    await call('POST', mappings, {apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', metadata: {name: 'web', finalizers: ['smartnat.aureacentral.com/cleanup']}, spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]}})
    const pending = await call('DELETE', `${mappings}/web`, {propagationPolicy: 'Background'})
    expect(pending.status).to.equal(202)
    expect(pending.body.metadata.deletionTimestamp).to.be.a('string')
    expect((await call('GET', `${mappings}/web`)).status).to.equal(200)
    const released = await call('PATCH', `${mappings}/web`, [{op: 'remove', path: '/metadata/finalizers'}], {'Content-Type': 'application/json-patch+json'})
    expect(released.status).to.equal(200)
    expect((await call('GET', `${mappings}/web`)).status).to.equal(404)
  })

  it('validates fields strictly, with a warning, or silently, as fieldValidation asks', async function () {
    const body = (name: string) => ({apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', metadata: {name}, spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80, colour: 'red'}]}})
    const strict = await call('POST', `${mappings}?fieldValidation=Strict`, body('strict'))
    expect(strict.status).to.equal(400)
    expect(strict.body.message).to.equal('strict decoding error: unknown field "spec.ports[0].colour"')
    const warn = await call('POST', mappings, body('warn'))
    expect(warn.status).to.equal(201)
    expect(warn.warning).to.equal('299 - "unknown field \\"spec.ports[0].colour\\""')
    expect(warn.body.spec.ports).to.deep.equal([{port: 80}])
    const ignore = await call('POST', `${mappings}?fieldValidation=Ignore`, body('ignore'))
    expect([ignore.status, ignore.warning]).to.deep.equal([201, null])
    expect(ignore.body.spec.ports).to.deep.equal([{port: 80}])
    const dry = await call('POST', `${mappings}?dryRun=All`, body('dry'))
    expect(dry.status).to.equal(201)
    expect((await call('GET', `${mappings}/dry`)).status).to.equal(404)
  })

  it('refuses strategic merge patches of custom resources and applies them to Services', async function () {
    await call('POST', mappings, {apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', metadata: {name: 'web'}, spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]}})
    const refused = await call('PATCH', `${mappings}/web`, {spec: {serviceName: 'x'}}, {'Content-Type': 'application/strategic-merge-patch+json'})
    expect(refused.status).to.equal(415)
    const services = '/api/v1/namespaces/default/services'
    await call('POST', services, {metadata: {name: 'web'}, spec: {ports: [{name: 'http', port: 80}, {name: 'dns', port: 53, protocol: 'UDP'}]}})
    const patched = await call('PATCH', `${services}/web`, {spec: {ports: [{port: 80, targetPort: 8080}, {port: 53, $patch: 'delete'}]}}, {'Content-Type': 'application/strategic-merge-patch+json'})
    expect(patched.body.spec.ports).to.deep.equal([{name: 'http', port: 80, protocol: 'TCP', targetPort: 8080}])
  })
})
