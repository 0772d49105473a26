/**
 * smartnat as the cluster's load-balancer provider: `smartnat watch` against the test API server and the
 * namespace lab. LoadBalancer Services shaped as a Helm chart writes them get an address from an
 * AddressPool, recorded in their status (kubectl shows it as EXTERNAL-IP), and carry traffic from that
 * address to the ClusterIP; loadBalancerSourceRanges is the allow-list; Services with one sharing key
 * share an address on disjoint ports; a taken request and an exhausted pool leave Services pending with
 * an Event; a deleted Service's address goes to the next Service asking for it; a pool's namespaceSelector
 * follows namespace labels. Two hosts allocate through one allocator Lease: at no moment a watch of the
 * Services sees one address recorded for two of them, and when the holder dies the other takes over.
 */
import {KubeConfig, Watch} from '@kubernetes/client-node'
import {expect} from 'chai'
import {execFile} from 'node:child_process'
import {join} from 'node:path'
import {LOAD_BALANCER_CLASS} from '../../src/lib/mapping/loadbalancer.js'
import type {ServiceResource} from '../../src/lib/mapping/types.js'
import {startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {eventually} from '../support/e2e.js'
import {startKubeWatch, type KubeWatch} from '../support/kube-watch.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {serviceFromLab, serviceManifests} from '../support/mappings.js'
import {requireNeeds} from '../support/requirements.js'
import {killSmartnat} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const [EXT_A, EXT_B, EXT_C] = LAB_PLAN.host.eth1.addresses
const [ALLOWED_CLIENT, OTHER_CLIENT] = LAB_PLAN.client1.addresses

interface StoredEvent {
  type: string
  reason: string
  message: string
  involvedObject: {kind: string; name: string}
}

/** A Service as a typical Helm chart renders it, with smartnat's class and whatever else is asked for. */
function chartService(name: string, ports: {name: string; port: number; protocol: 'TCP' | 'UDP'}[], extra: {annotations?: Record<string, string>; sourceRanges?: string[]} = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: 'default',
      labels: {'app.kubernetes.io/name': name, 'app.kubernetes.io/instance': 'release-1', 'app.kubernetes.io/managed-by': 'Helm', 'helm.sh/chart': `${name}-1.2.3`},
      annotations: {'meta.helm.sh/release-name': 'release-1', 'meta.helm.sh/release-namespace': 'default', ...extra.annotations},
    },
    spec: {
      type: 'LoadBalancer',
      loadBalancerClass: LOAD_BALANCER_CLASS,
      clusterIP: VIP,
      externalTrafficPolicy: 'Cluster',
      selector: {'app.kubernetes.io/name': name, 'app.kubernetes.io/instance': 'release-1'},
      ports: ports.map((p) => ({...p, targetPort: p.name})),
      ...(extra.sourceRanges ? {loadBalancerSourceRanges: extra.sourceRanges} : {}),
    },
  } as unknown as KubeObject
}

const HTTP = {name: 'http', port: 80, protocol: 'TCP'} as const
const DNS = {name: 'dns', port: 53, protocol: 'UDP'} as const

describe('LoadBalancer Services and address pools, with smartnat watch in the namespace lab (root)', function () {
  this.timeout(40_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let daemon: KubeWatch | undefined
  /** Another smartnat host allocating from the same API (in the lab's rtr2, serving no interface). */
  let second: KubeWatch | undefined
  /** Short, so that a takeover after a host dies fits in a test. */
  const LEASE = ['--lease-duration', '4s']

  const services = () => server!.types.services
  const stored = (name: string) => server!.api.get(services(), 'default', name) as unknown as ServiceResource
  const addressOf = (name: string) => stored(name).status?.loadBalancer?.ingress?.[0]?.ip
  const create = (object: KubeObject) => server!.api.create(services(), 'default', object)
  const events = (name: string) =>
    server!.api.list(server!.types.events, 'default', {}).items.map((e) => e as unknown as StoredEvent).filter((e) => e.involvedObject.kind === 'Service' && e.involvedObject.name === name)
  const reach = async (from: string, address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp') => {
    const [result] = await lab!.requests(protocol, 'client1', from, address, port, 1, {timeoutMs: 500})
    return result!.ok ? result!.fields.pod! : result!.error
  }
  const reachesPod = async (from: string, address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp') => {
    const answer = await reach(from, address, port, protocol)
    return PODS.includes(answer ?? '') ? answer : undefined
  }
  const withOutput = <T>(check: Promise<T>): Promise<T> => daemon!.withOutput(check)
  const allocated = (name: string) => withOutput(eventually(`an address for ${name}`, 10_000, () => addressOf(name)))

  before(async function () {
    this.timeout(60_000)
    requireLab(this)
    lab = await createLab()
    server = await startApiServer({crds: ['crds/mapping.yaml', 'crds/addresspool.yaml']})
    // Where the host Leases and the allocator Lease live (deploy/rbac.yaml creates it in a cluster).
    server.api.create(server!.types.namespaces, undefined, {apiVersion: 'v1', kind: 'Namespace', metadata: {name: 'smartnat-system'}} as unknown as KubeObject)
    server.api.create(server!.types.addressPools, undefined, {
      metadata: {name: 'edge'},
      spec: {addresses: [`${EXT_A}-${EXT_C}`]},
    } as unknown as KubeObject)
    // The pods behind every Service of this test: the lab's one Service, whose EndpointSlice each Service shares.
    const [, slice] = serviceManifests(serviceFromLab('web', lab.services(), VIP))
    server.api.create(server!.types.endpointSlices, 'default', slice as KubeObject)
    daemon = await startKubeWatch(lab, server, ['--resync', '3s', '--log-level', 'debug', ...LEASE], {timeoutMs: 150_000})
    await daemon.ready()
  })

  after(async () => {
    await second?.stop()
    await daemon?.stop()
    await server?.stop()
    await lab?.destroy()
  })

  it('a Helm-chart-shaped LoadBalancer Service gets the pool\'s first address, recorded with ipMode Proxy, and carries traffic to its ClusterIP', async () => {
    create(chartService('web', [HTTP], {sourceRanges: [`${ALLOWED_CLIENT}/32`]}))
    expect(await allocated('web')).to.equal(EXT_A)
    expect(stored('web').status?.loadBalancer?.ingress).to.deep.equal([{ip: EXT_A, ipMode: 'Proxy', ports: [{port: 80, protocol: 'TCP'}]}])
    expect(await withOutput(eventually('traffic from the allowed client', 5000, () => reachesPod(ALLOWED_CLIENT, EXT_A, 80)))).to.be.oneOf(PODS)
    expect(events('web').map((e) => [e.type, e.reason, e.message])).to.deep.equal([['Normal', 'AddressAllocated', `allocated ${EXT_A} from AddressPool edge`]])
    const logged = daemon!.log.split('\n').filter(Boolean).map((line) => JSON.parse(line) as {msg: string; allocated?: number})
    expect(logged.some((line) => line.msg === 'LoadBalancer addresses recorded' && line.allocated === 1)).to.equal(true)
  })

  it('kubectl get svc shows the address as EXTERNAL-IP', async function () {
    requireNeeds(this, 'kubectl get svc', {tools: ['kubectl']})
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile('kubectl', ['--kubeconfig', daemon!.kubeconfig, '--cache-dir', join(daemon!.dir, 'kubectl-cache'), 'get', 'svc', 'web', '--no-headers'], {timeout: 20_000}, (error, out, err) =>
        error ? reject(new Error(`kubectl get svc: ${err}`)) : resolve(out)),
    )
    expect(stdout.trim().split(/\s+/).slice(0, 5)).to.deep.equal(['web', 'LoadBalancer', VIP, EXT_A, '80/TCP'])
  })

  it('loadBalancerSourceRanges is the allow-list: another client is dropped', async () => {
    expect(await reach(OTHER_CLIENT, EXT_A, 80)).to.not.be.oneOf(PODS)
    expect(await reachesPod(ALLOWED_CLIENT, EXT_A, 80)).to.be.oneOf(PODS)
  })

  it('two Services with one sharing key share an address on disjoint ports', async () => {
    const shared = {annotations: {'smartnat.aureacentral.com/allow-shared-ip': 'frontend'}}
    create(chartService('share-tcp', [HTTP], shared))
    create(chartService('share-udp', [DNS], shared))
    expect([await allocated('share-tcp'), await allocated('share-udp')]).to.deep.equal([EXT_B, EXT_B])
    expect(await withOutput(eventually('tcp on the shared address', 5000, () => reachesPod(OTHER_CLIENT, EXT_B, 80)))).to.be.oneOf(PODS)
    expect(await withOutput(eventually('udp on the shared address', 5000, () => reachesPod(OTHER_CLIENT, EXT_B, 53, 'udp')))).to.be.oneOf(PODS)
  })

  it('a Service requesting a taken address stays pending, and an Event says who holds it', async () => {
    create(chartService('wants-a', [HTTP], {annotations: {'smartnat.aureacentral.com/addresses': EXT_A}}))
    const event = await withOutput(eventually('the AllocationFailed Event', 10_000, () => events('wants-a').find((e) => e.reason === 'AllocationFailed')))
    expect(event).to.include({type: 'Warning', message: `the requested address ${EXT_A} is taken: it is held by default/web (sharing needs the same smartnat.aureacentral.com/allow-shared-ip key in the same namespace)`})
    expect(addressOf('wants-a')).to.equal(undefined)
  })

  it('once the pool is exhausted, the next Service stays pending with an Event', async () => {
    create(chartService('third', [HTTP]))
    expect(await allocated('third')).to.equal(EXT_C)
    create(chartService('fourth', [HTTP]))
    const event = await withOutput(eventually('the AllocationFailed Event', 10_000, () => events('fourth').find((e) => e.reason === 'AllocationFailed')))
    expect(event!.message).to.equal('AddressPool edge has no free address')
    const pool = server!.api.get(server!.types.addressPools, undefined, 'edge') as unknown as {status?: {inUse: number; free: number}}
    expect(pool.status).to.deep.include({inUse: 3, free: 0})
  })

  it('deleting a Service releases its address: the Service that asked for it gets it, and traffic follows', async () => {
    server!.api.delete(services(), 'default', 'web')
    expect(await allocated('wants-a')).to.equal(EXT_A)
    // wants-a has no source ranges: the client web did not allow reaches it now.
    expect(await withOutput(eventually('traffic to the new owner', 5000, () => reachesPod(OTHER_CLIENT, EXT_A, 80)))).to.be.oneOf(PODS)
    expect(addressOf('fourth')).to.equal(undefined)
  })

  it('a pool with a namespaceSelector serves namespaces whose labels match; a label added admits, a label removed keeps what is held', async () => {
    const namespaces = server!.types.namespaces
    const namespace = (name: string, labels: Record<string, string>) => server!.api.create(namespaces, undefined, {apiVersion: 'v1', kind: 'Namespace', metadata: {name, labels}} as unknown as KubeObject)
    const relabel = (name: string, labels: Record<string, string | null>) => server!.api.patch(namespaces, undefined, name, 'application/merge-patch+json', {metadata: {labels}})
    namespace('team-edge', {tier: 'edge'})
    namespace('team-core', {tier: 'core'})
    server!.api.create(server!.types.addressPools, undefined, {
      metadata: {name: 'selected'},
      spec: {addresses: ['198.18.9.0/30'], namespaceSelector: {matchExpressions: [{key: 'tier', operator: 'In', values: ['edge']}]}},
    } as unknown as KubeObject)
    const inNamespace = (name: string, ns: string) => {
      const object = chartService(name, [HTTP], {annotations: {'smartnat.aureacentral.com/pool': 'selected'}})
      server!.api.create(services(), ns, {...object, metadata: {...object.metadata, namespace: ns}} as KubeObject)
    }
    const addressIn = (ns: string, name: string) => (server!.api.get(services(), ns, name) as unknown as ServiceResource).status?.loadBalancer?.ingress?.[0]?.ip
    const eventsIn = (ns: string, name: string) =>
      server!.api.list(server!.types.events, ns, {}).items.map((e) => e as unknown as StoredEvent).filter((e) => e.involvedObject.name === name)
    inNamespace('edge-app', 'team-edge')
    inNamespace('core-app', 'team-core')
    expect(await withOutput(eventually('an address in team-edge', 10_000, () => addressIn('team-edge', 'edge-app')))).to.equal('198.18.9.0')
    const refused = await withOutput(eventually('the AllocationFailed Event in team-core', 10_000, () => eventsIn('team-core', 'core-app').find((e) => e.reason === 'AllocationFailed')))
    expect(refused.message).to.equal('AddressPool selected does not admit namespace team-core')
    expect(addressIn('team-core', 'core-app')).to.equal(undefined)
    relabel('team-core', {tier: 'edge'})
    expect(await withOutput(eventually('an address in team-core once labelled', 10_000, () => addressIn('team-core', 'core-app')))).to.equal('198.18.9.1')
    // Sticky: a Service holding an address keeps it when its namespace stops matching.
    relabel('team-edge', {tier: null})
    inNamespace('late-app', 'team-edge')
    await withOutput(eventually('the new Service in team-edge refused', 10_000, () => eventsIn('team-edge', 'late-app').find((e) => e.reason === 'AllocationFailed')))
    expect(addressIn('team-edge', 'edge-app')).to.equal('198.18.9.0')
    expect(addressIn('team-edge', 'late-app')).to.equal(undefined)
  })

  it('two smartnat hosts allocating at once give 50 new Services 50 distinct addresses within 5 s, never one address to two Services at any moment', async () => {
    second = await startKubeWatch(lab!, server!, ['--interfaces', '^serves-none$', '--resync', '3s', ...LEASE], {netns: 'rtr2', timeoutMs: 100_000})
    await second.ready()
    const seen = await watchAddresses()
    try {
      server!.api.create(server!.types.addressPools, undefined, {metadata: {name: 'bulk'}, spec: {addresses: ['198.18.8.0/26']}} as unknown as KubeObject)
      const names = Array.from({length: 50}, (_, i) => `bulk-${i}`)
      const started = Date.now()
      // Over about half a second, each name sorting before the last: created in one second, each new
      // Service is the oldest by the allocator's order, so hosts that decided from different moments
      // (or one host from a cache behind its own writes) would give its address to the newcomer.
      for (const name of [...names].reverse()) {
        create(chartService(name, [HTTP]))
        await new Promise((resolve) => setTimeout(resolve, 10))
      }
      const addresses = await withOutput(eventually('50 distinct addresses', 5000, () => {
        const recorded = names.map(addressOf).filter((ip) => ip !== undefined)
        return recorded.length === 50 && new Set(recorded).size === 50 ? recorded : undefined
      }))
      const seconds = (Date.now() - started) / 1000
      const acquired = (log: string) => log.includes('allocator Lease acquired')
      console.log(`      50 Services: distinct addresses after ${seconds.toFixed(2)} s; Service events watched: ${seen.events}; allocator: ${acquired(daemon!.log) ? 'first host' : acquired(second.log) ? 'second host' : 'none logged'}`)
      expect(addresses.every((ip) => ip.startsWith('198.18.8.'))).to.equal(true)
      expect(seen.events).to.be.greaterThanOrEqual(50)
      expect(seen.shared, 'moments a watch of the Services saw one address recorded for two of them').to.deep.equal([])
      // Exactly one of the two hosts decided.
      expect([acquired(daemon!.log), acquired(second.log)].filter(Boolean)).to.have.length(1)
    } finally {
      seen.stop()
    }
  })

  it('when the allocating host dies, the other takes the allocator Lease over once it expires and allocates', async () => {
    const [holder, survivor] = daemon!.log.includes('allocator Lease acquired') ? [daemon!, second!] : [second!, daemon!]
    await killSmartnat(holder.cli)
    const seen = await watchAddresses()
    try {
      const names = Array.from({length: 5}, (_, i) => `after-${i}`)
      for (const name of names) create(chartService(name, [HTTP], {annotations: {'smartnat.aureacentral.com/pool': 'bulk'}}))
      // The Lease lasts 4 s: taken over 4 to 5 s after the last renewal, then one pass.
      const addresses = await withOutput(eventually('addresses from the surviving host', 15_000, () => {
        const recorded = names.map(addressOf).filter((ip) => ip !== undefined)
        return recorded.length === names.length ? recorded : undefined
      }))
      expect(survivor.log).to.include('allocator Lease acquired')
      expect(new Set(addresses).size).to.equal(names.length)
      expect(addresses.every((ip) => ip.startsWith('198.18.8.'))).to.equal(true)
      expect(seen.shared).to.deep.equal([])
    } finally {
      seen.stop()
    }
  })

  /**
   * Watches every Service through the API and checks, after each event, that no address is recorded for
   * two Services that may not share it (none of these Services has a sharing key, apart from share-*).
   */
  async function watchAddresses(): Promise<{events: number; shared: string[]; stop: () => void}> {
    const kc = new KubeConfig()
    kc.loadFromString(server!.kubeconfig())
    const holders = new Map<string, string>()
    const result = {events: 0, shared: [] as string[], stop: () => {}}
    const list = server!.api.list(services(), undefined, {})
    for (const item of list.items) {
      const service = item as unknown as ServiceResource
      const ip = service.status?.loadBalancer?.ingress?.[0]?.ip
      if (ip !== undefined) holders.set(`${service.metadata.namespace}/${service.metadata.name}`, ip)
    }
    const controller = await new Watch(kc).watch('/api/v1/services', {resourceVersion: String(list.metadata.resourceVersion)}, (phase: string, service: ServiceResource) => {
      result.events++
      const key = `${service.metadata.namespace}/${service.metadata.name}`
      const ip = service.status?.loadBalancer?.ingress?.[0]?.ip
      if (phase === 'DELETED' || ip === undefined) holders.delete(key)
      else holders.set(key, ip)
      const byIp = new Map<string, string[]>()
      for (const [name, address] of holders) if (!name.startsWith('default/share-')) byIp.set(address, [...(byIp.get(address) ?? []), name])
      for (const [address, names] of byIp) if (names.length > 1) result.shared.push(`${address}: ${names.join(', ')}`)
    }, () => {})
    result.stop = () => controller.abort()
    return result
  }
})
