/** The fault proxy between @kubernetes/client-node and the test API server: pass-through, hang, fail, cut. */
import {ApiException, CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions, Watch} from '@kubernetes/client-node'
import {expect} from 'chai'
import {startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {eventually} from '../support/e2e.js'
import {kubeconfigThrough, startFaultProxy, statusWrites, type FaultProxy} from '../support/fault-proxy.js'

const TARGET = {group: 'smartnat.aureacentral.com', version: 'v1alpha1', plural: 'mappings', namespace: 'default'}
const PATH = '/apis/smartnat.aureacentral.com/v1alpha1/namespaces/default/mappings'
const mergePatch = setHeaderOptions('Content-Type', PatchStrategy.MergePatch)

const manifest = (name: string): KubeObject => ({
  apiVersion: 'smartnat.aureacentral.com/v1alpha1',
  kind: 'Mapping',
  metadata: {name},
  spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]},
})

describe('fault proxy in front of the test API server', () => {
  let server: ApiServer
  let proxy: FaultProxy
  let custom: CustomObjectsApi
  let kc: KubeConfig
  const watches: AbortController[] = []

  beforeEach(async () => {
    server = await startApiServer({crds: ['crds/mapping.yaml']})
    proxy = await startFaultProxy(server.port)
    kc = new KubeConfig()
    kc.loadFromString(kubeconfigThrough(server, proxy))
    custom = kc.makeApiClient(CustomObjectsApi)
    server.api.create(server.registry.find(TARGET.group, TARGET.version, TARGET.plural)!, 'default', manifest('web'))
  })

  afterEach(async () => {
    for (const controller of watches.splice(0)) controller.abort()
    await proxy.close()
    await server.stop()
  })

  const createDirectly = (name: string) => server.api.create(server.registry.find(TARGET.group, TARGET.version, TARGET.plural)!, 'default', manifest(name))
  const get = (name: string) => custom.getNamespacedCustomObject({...TARGET, name}) as Promise<{metadata: {name: string}}>
  const patchStatus = (name: string) =>
    custom.patchNamespacedCustomObjectStatus({...TARGET, name, body: {status: {invalid: 'no'}}}, mergePatch) as Promise<{status?: {invalid?: string}}>

  /** Watches Mappings through the proxy: the names seen, and how the stream ended. */
  async function watchNames(): Promise<{names: string[]; ended: () => unknown}> {
    const names: string[] = []
    let ended: unknown = 'open'
    const controller = await new Watch(kc).watch(PATH, {}, (_type, object: {metadata: {name: string}}) => names.push(object.metadata.name), (error) => (ended = error ?? 'closed'))
    watches.push(controller)
    return {names, ended: () => ended}
  }

  it('passes requests and a watch stream through', async () => {
    expect((await get('web')).metadata.name).to.equal('web')
    const watch = await watchNames()
    await eventually('the listed Mapping', 3000, () => (watch.names.includes('web') ? true : undefined))
    createDirectly('later')
    await eventually('the event of a Mapping created after the watch began', 3000, () => (watch.names.includes('later') ? true : undefined))
    expect(proxy.counts).to.include({held: 0, failed: 0})
  })

  it('hangs only the requests that match, and lifting the hang lets the server answer them', async () => {
    const fault = proxy.hang(statusWrites)
    let settled = false
    const patching = patchStatus('web').finally(() => (settled = true))
    await eventually('the status write to be held', 3000, () => (proxy.held() === 1 ? true : undefined))
    expect((await get('web')).metadata.name, 'a read passes meanwhile').to.equal('web')
    expect(settled).to.equal(false)
    fault.lift()
    expect((await patching).status).to.deep.equal({invalid: 'no'})
    expect(proxy.held()).to.equal(0)
  })

  it('fails the requests that match with the code and a Kubernetes Status', async () => {
    proxy.fail(500, statusWrites)
    const error = await patchStatus('web').then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).to.be.instanceOf(ApiException)
    const body = JSON.parse(String((error as ApiException<string>).body)) as Record<string, unknown>
    expect({code: (error as ApiException<string>).code, reason: body.reason, kind: body.kind}).to.deep.equal({code: 500, reason: 'InternalError', kind: 'Status'})
    expect((await get('web')).metadata.name).to.equal('web')
    proxy.passThrough()
    expect((await patchStatus('web')).status).to.deep.equal({invalid: 'no'})
  })

  it('a hang stops an open watch mid-stream; lifting it delivers what the server sent meanwhile', async () => {
    const watch = await watchNames()
    await eventually('the listed Mapping', 3000, () => (watch.names.includes('web') ? true : undefined))
    const fault = proxy.hang()
    createDirectly('during')
    await eventually('the proxy to withhold the event', 3000, () => (proxy.counts.withheld > 0 ? true : undefined))
    expect(watch.names).to.not.include('during')
    fault.lift()
    await eventually('the withheld event', 3000, () => (watch.names.includes('during') ? true : undefined))
    expect(watch.ended()).to.equal('open')
  })

  it('cutting the connections ends held requests and open watches; new requests still get through', async () => {
    const watch = await watchNames()
    await eventually('the watch to be open', 3000, () => (server.openWatches() === 1 ? true : undefined))
    proxy.hang(statusWrites)
    const patching = patchStatus('web').then(
      () => 'answered',
      () => 'failed',
    )
    await eventually('the status write to be held', 3000, () => (proxy.held() === 1 ? true : undefined))
    proxy.cutConnections()
    expect(await patching).to.equal('failed')
    await eventually('the watch to end', 3000, () => (watch.ended() === 'open' ? undefined : true))
    await eventually('the server to see the watch gone', 3000, () => (server.openWatches() === 0 ? true : undefined))
    expect((await get('web')).metadata.name).to.equal('web')
  })

  it('close() ends every connection and stops listening', async () => {
    const watch = await watchNames()
    proxy.hang(statusWrites)
    const patching = patchStatus('web').then(
      () => 'answered',
      () => 'failed',
    )
    await eventually('the status write to be held', 3000, () => (proxy.held() === 1 ? true : undefined))
    await proxy.close()
    expect(await patching).to.equal('failed')
    await eventually('the watch to end', 3000, () => (watch.ended() === 'open' ? undefined : true))
    const refused = await get('web').then(
      () => false,
      () => true,
    )
    expect(refused).to.equal(true)
  })
})
