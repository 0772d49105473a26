import {expect} from 'chai'
import {LOAD_BALANCER_CLASS, serviceExposure, WAITING_FOR_ADDRESS} from '../../src/lib/mapping/loadbalancer.js'
import type {MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {withServiceExposures} from '../../src/lib/plan/exposures.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {cachedObject} from '../../src/lib/source/kube/trim.js'
import type {WatchedKind} from '../../src/lib/source/kube/kinds.js'
import {SettledInputs} from '../../src/lib/sync/inputs.js'

const HOST: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}]}]}

/** A Service as a typical Helm chart writes it: type LoadBalancer, named ports, no class unless given. */
function chartService(overrides: {class?: string | null; ip?: string; sources?: string[]; annotations?: Record<string, string>; created?: string; type?: string} = {}): ServiceResource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      namespace: 'shop',
      name: 'web',
      uid: 'u-web',
      creationTimestamp: overrides.created ?? '2025-01-02T00:00:00Z',
      ...(overrides.annotations ? {annotations: overrides.annotations} : {}),
    },
    spec: {
      type: overrides.type ?? 'LoadBalancer',
      ...(overrides.class === null ? {} : {loadBalancerClass: overrides.class ?? LOAD_BALANCER_CLASS}),
      clusterIP: '198.19.0.5',
      ports: [
        {name: 'http', port: 80, protocol: 'TCP', targetPort: 'http'},
        {name: 'dns', port: 53, protocol: 'UDP', targetPort: 5353},
      ],
      ...(overrides.sources ? {loadBalancerSourceRanges: overrides.sources} : {}),
    },
    ...(overrides.ip ? {status: {loadBalancer: {ingress: [{ip: overrides.ip, ipMode: 'Proxy' as const}]}}} : {}),
  }
}

function planned(snapshot: Snapshot, defaultLoadBalancer = false) {
  return plan(withServiceExposures(snapshot, defaultLoadBalancer), HOST, DEFAULT_PLAN_OPTIONS)
}

const mapping = (name: string, created: string, port: number): MappingResource => ({
  metadata: {namespace: 'shop', name, creationTimestamp: created},
  spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port, servicePort: 80}]},
})

describe('LoadBalancer Services as exposures', function () {
  it('exposes every Service port on the recorded address, to the ClusterIP, allowing its loadBalancerSourceRanges', function () {
    const result = planned({mappings: [], services: [chartService({ip: '198.18.0.10', sources: ['198.18.50.0/24']})], endpointSlices: []})
    expect(result.verdicts.map((v) => [v.name, v.invalid])).to.deep.equal([['svc.web', 'no']])
    const [exposed] = result.model.mappings
    expect(exposed!.allowedSources).to.deep.equal(['198.18.50.0/24'])
    expect(exposed!.endpoints.map((e) => [e.address, e.protocol, e.port, e.targetIP, e.targetPort])).to.deep.equal([
      ['198.18.0.10', 'tcp', 80, '198.19.0.5', 80],
      ['198.18.0.10', 'udp', 53, '198.19.0.5', 53],
    ])
  })

  const served: {desc: string; service: ServiceResource; defaultLoadBalancer: boolean; exposed: boolean}[] = [
    {desc: 'of smartnat\'s class', service: chartService({ip: '198.18.0.10'}), defaultLoadBalancer: false, exposed: true},
    {desc: 'of another class, even as the default', service: chartService({ip: '198.18.0.10', class: 'example.com/lb'}), defaultLoadBalancer: true, exposed: false},
    {desc: 'without a class, not the default', service: chartService({ip: '198.18.0.10', class: null}), defaultLoadBalancer: false, exposed: false},
    {desc: 'without a class, as the default', service: chartService({ip: '198.18.0.10', class: null}), defaultLoadBalancer: true, exposed: true},
    {desc: 'of type ClusterIP', service: chartService({ip: '198.18.0.10', class: null, type: 'ClusterIP'}), defaultLoadBalancer: true, exposed: false},
  ]
  for (const {desc, service, defaultLoadBalancer, exposed} of served) {
    it(`${exposed ? 'serves' : 'leaves alone'} a LoadBalancer Service ${desc}`, function () {
      const result = planned({mappings: [], services: [service], endpointSlices: []}, defaultLoadBalancer)
      expect(result.model.mappings.length).to.equal(exposed ? 1 : 0)
    })
  }

  it('plans a Service without a recorded address as waiting for one', function () {
    const result = planned({mappings: [], services: [chartService()], endpointSlices: []})
    expect(result.verdicts.map((v) => v.invalid)).to.deep.equal([WAITING_FOR_ADDRESS])
    expect(result.model.mappings).to.deep.equal([])
  })

  it('names loadBalancerSourceRanges in its reasons', function () {
    const result = planned({mappings: [], services: [chartService({ip: '198.18.0.10', sources: ['198.18.0.0/40']})], endpointSlices: []})
    expect(result.verdicts[0]!.invalid).to.equal('loadBalancerSourceRanges[0] "198.18.0.0/40": prefix length must be 0..32')
  })

  it('shares endpoints with Mappings by the oldest-wins rule, both ways', function () {
    const older = planned({mappings: [mapping('old', '2025-01-01T00:00:00Z', 80)], services: [chartService({ip: '198.18.0.10'})], endpointSlices: []})
    expect(older.verdicts.map((v) => [v.name, v.invalid])).to.deep.equal([
      ['old', 'no'],
      ['svc.web', 'tcp/80 on 198.18.0.10 is already mapped by shop/old'],
    ])
    const younger = planned({mappings: [mapping('new', '2025-01-03T00:00:00Z', 80)], services: [chartService({ip: '198.18.0.10'})], endpointSlices: []})
    expect(younger.verdicts.map((v) => [v.name, v.invalid])).to.deep.equal([
      ['new', 'tcp/80 on 198.18.0.10 is already mapped by shop/svc.web'],
      ['svc.web', 'no'],
    ])
  })

  it('a Mapping that has the exposure\'s name keeps it: the Service is not exposed', function () {
    const result = planned({mappings: [{...mapping('svc.web', '2025-01-03T00:00:00Z', 8080)}], services: [chartService({ip: '198.18.0.10'})], endpointSlices: []})
    expect(result.verdicts.map((v) => [v.name, v.invalid])).to.deep.equal([['svc.web', 'no']])
    expect(result.model.mappings[0]!.endpoints.map((e) => e.port)).to.deep.equal([8080])
  })

  it('gives the very same exposure for the same Service object, and a new one for a changed Service', function () {
    const service = chartService({ip: '198.18.0.10'})
    const services = [service]
    const first = withServiceExposures({mappings: [], services, endpointSlices: []}, false)
    const again = withServiceExposures({mappings: [], services: [...services], endpointSlices: []}, false)
    expect(again.mappings[0]).to.equal(first.mappings[0])
    expect(serviceExposure(service)).to.equal(first.mappings[0])
    expect(serviceExposure({...service})).to.not.equal(first.mappings[0])
  })

  it('a changed LoadBalancer Service is a change for the watch loop, which no Mapping names', function () {
    const settled = new SettledInputs()
    const before = withServiceExposures({mappings: [], services: [chartService()], endpointSlices: []}, false)
    settled.settle(before)
    expect(settled.same(withServiceExposures({mappings: [], services: [...before.services], endpointSlices: []}, false))).to.equal(true)
    expect(settled.same(withServiceExposures({mappings: [], services: [chartService({ip: '198.18.0.10'})], endpointSlices: []}, false))).to.equal(false)
  })

  it('the API cache keeps what exposures read: class, requests, source ranges, smartnat\'s annotations and the recorded ingress', function () {
    const kind = {name: 'Service', apiVersion: 'v1'} as WatchedKind
    const wire = {
      ...chartService({ip: '198.18.0.10', sources: ['198.18.50.0/24'], annotations: {'smartnat.aureacentral.com/pool': 'edge', 'helm.sh/chart': 'web-1.0'}}),
      spec: {...chartService({sources: ['198.18.50.0/24']}).spec, loadBalancerIP: '198.18.0.10', selector: {app: 'web'}},
    }
    const cached = cachedObject(kind, wire as never) as unknown as ServiceResource
    expect(cached.metadata.annotations).to.deep.equal({'smartnat.aureacentral.com/pool': 'edge'})
    expect(cached.spec).to.include({type: 'LoadBalancer', loadBalancerClass: LOAD_BALANCER_CLASS, loadBalancerIP: '198.18.0.10'})
    expect(cached.spec!.loadBalancerSourceRanges).to.deep.equal(['198.18.50.0/24'])
    expect(cached.status).to.deep.equal({loadBalancer: {ingress: [{ip: '198.18.0.10', ipMode: 'Proxy'}]}})
  })
})
