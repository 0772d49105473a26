/** What the API cache keeps of Mappings and Services (src/lib/source/kube/trim.ts). */
import {expect} from 'chai'
import type {WatchedKind} from '../../src/lib/source/kube/kinds.js'
import {SharedStrings} from '../../src/lib/net/shared-strings.js'
import {SharedValues} from '../../src/lib/net/shared-values.js'
import {cachedObject} from '../../src/lib/source/kube/trim.js'

const MAPPING_KIND = {name: 'Mapping', apiVersion: 'smartnat.aureacentral.com/v1alpha1'} as WatchedKind

/** A Mapping as a real API server sends it in a list: bookkeeping, labels and annotations, a spec and the status writeback compares against. */
function wireMapping(name: string): Record<string, unknown> {
  return JSON.parse(JSON.stringify({
    metadata: {
      name, namespace: 'shop', uid: `uid-${name}`, resourceVersion: '42', generation: 3, creationTimestamp: '2026-01-01T00:00:00Z',
      finalizers: ['smartnat.aureacentral.com/cleanup'], labels: {app: 'web'},
      annotations: {'kubectl.kubernetes.io/last-applied-configuration': '{"spec":{}}', 'example.com/owner': 'team-a'},
      managedFields: [{manager: 'kubectl', operation: 'Update'}],
    },
    spec: {serviceName: 'web', addresses: ['198.18.0.10'], allowedSources: ['198.18.100.0/24', '198.18.200.1'], ports: [{port: 80, protocol: 'tcp', servicePort: 8080}], mode: 'service'},
    status: {
      invalid: 'no', serviceVIP: '198.19.0.1',
      configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.128.1'], host: 'edge-1.example.com'}, '198.18.0.11': {podIPs: [], host: 'edge-2.example.com', fault: 'down'}},
      conditions: [
        {type: 'Valid', status: 'True', reason: 'Valid', message: 'spec is valid and its Service resolves', lastTransitionTime: '2026-12-03T10:00:00Z', observedGeneration: 3},
        {type: 'Ready', status: 'True', reason: 'Configured', message: 'serving on 198.18.0.10', lastTransitionTime: '2026-12-03T10:00:00Z'},
      ],
      observedGeneration: 3,
    },
  })) as Record<string, unknown>
}

describe('the API cache of Mappings', function () {
  it('keeps of the metadata what smartnat reads, and spec and status as they came, fields in their order', function () {
    const wire = wireMapping('web')
    const before = JSON.stringify(wire)
    const cached = cachedObject(MAPPING_KIND, wire as never)
    expect(JSON.stringify(wire), 'the object given').to.equal(before)
    expect(cached.metadata).to.deep.equal({
      name: 'web', namespace: 'shop', uid: 'uid-web', resourceVersion: '42', generation: 3, creationTimestamp: '2026-01-01T00:00:00Z',
      finalizers: ['smartnat.aureacentral.com/cleanup'],
    })
    // Byte for byte: the planner compares specs as JSON, the status writeback compares statuses field by field.
    expect(JSON.stringify(cached.spec)).to.equal(JSON.stringify(wire.spec))
    expect(JSON.stringify(cached.status)).to.equal(JSON.stringify(wire.status))
    expect(Object.keys(cached)).to.deep.equal(['metadata', 'spec', 'status', 'apiVersion', 'kind'])
  })

  it('hands spec and status through unchanged when they are not the expected shape', function () {
    const wire = {metadata: {name: 'odd', namespace: 'shop'}, spec: {addresses: '198.18.0.10', allowedSources: [1, null, 'x']}, status: {conditions: 'none', configuredAddresses: ['x']}}
    const cached = cachedObject(MAPPING_KIND, JSON.parse(JSON.stringify(wire)))
    expect(cached.spec).to.deep.equal(wire.spec)
    expect(cached.status).to.deep.equal(wire.status)
  })
})

describe('SharedStrings', function () {
  it('gives back what it was given, strings or not, and never holds more strings than its limit', function () {
    const strings = new SharedStrings({limit: 3})
    const table = (strings as unknown as {table: Map<string, string>}).table
    for (let i = 0; i < 10; i++) expect(strings.share(`value ${i % 5}`)).to.equal(`value ${i % 5}`)
    expect(table.size).to.be.at.most(3)
    expect(strings.share(7)).to.equal(7)
    expect(strings.shareAll(['a', 1, 'a'])).to.deep.equal(['a', 1, 'a'])
    expect(strings.shareFields({b: 'x', a: 2, c: 'y'}, ['a', 'c', 'missing'])).to.deep.equal({b: 'x', a: 2, c: 'y'})
    expect(Object.keys(strings.shareFields({b: 'x', a: 2, c: 'y'}, ['c']))).to.deep.equal(['b', 'a', 'c'])
  })
})

describe('the API cache of Services', function () {
  const SERVICE_KIND = {name: 'Service', apiVersion: 'v1'} as WatchedKind
  const service = (spec: Record<string, unknown>) => cachedObject(SERVICE_KIND, {metadata: {name: 'web', namespace: 'shop'}, spec: {type: 'ClusterIP', ...spec, ports: [{port: 80, protocol: 'TCP'}]}})

  it('leaves out clusterIPs where it only repeats clusterIP, and keeps it where it says more', function () {
    expect(service({clusterIP: '198.19.0.1', clusterIPs: ['198.19.0.1']}).spec).to.deep.equal({type: 'ClusterIP', clusterIP: '198.19.0.1', ports: [{port: 80, protocol: 'TCP'}]})
    expect(service({clusterIP: 'fd00::10', clusterIPs: ['fd00::10', '198.19.0.11']}).spec).to.have.deep.property('clusterIPs', ['fd00::10', '198.19.0.11'])
    expect(service({clusterIP: '198.19.0.1', clusterIPs: ['198.19.0.2']}).spec).to.have.deep.property('clusterIPs', ['198.19.0.2'])
  })
})

describe('the API cache of EndpointSlices', function () {
  const SLICE_KIND = {name: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1'} as WatchedKind
  type Endpoint = {addresses: string[]; conditions: unknown}
  const slice = (name: string, conditions: unknown[]) =>
    cachedObject(SLICE_KIND, JSON.parse(JSON.stringify({
      metadata: {name, namespace: 'shop', labels: {'kubernetes.io/service-name': 'web'}},
      addressType: 'IPv4',
      endpoints: conditions.map((c, i) => ({addresses: [`198.19.0.${i + 1}`], conditions: c, nodeName: 'node-1'})),
    }))).endpoints as Endpoint[]

  it('keeps one conditions object for every endpoint with the same flags, and others as they came', function () {
    const ready = {ready: true, serving: true, terminating: false}
    const [a, b] = [slice('web-1', [ready, {ready: false}]), slice('web-2', [ready, {ready: true, serving: true, terminating: false}])]
    expect(a[0]!.conditions).to.deep.equal(ready)
    expect(b[0]!.conditions, 'same flags, another slice').to.equal(a[0]!.conditions)
    expect(b[1]!.conditions, 'same flags, same slice').to.equal(b[0]!.conditions)
    expect(a[1]!.conditions).to.deep.equal({ready: false})
    const odd = {ready: 'yes'}
    expect(slice('web-3', [odd])[0]!.conditions).to.deep.equal(odd)
    expect(a[0]).to.deep.equal({addresses: ['198.19.0.1'], conditions: ready})
  })
})

describe('what the API cache shares between objects', function () {
  const SERVICE_KIND = {name: 'Service', apiVersion: 'v1'} as WatchedKind
  const SLICE_KIND = {name: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1'} as WatchedKind
  type Cached = {spec: {addresses: unknown; allowedSources: unknown; ports: unknown[]}; status: {conditions: unknown[]; configuredAddresses: unknown}}
  const cachedMapping = (wire: Record<string, unknown>) => cachedObject(MAPPING_KIND, JSON.parse(JSON.stringify(wire))) as unknown as Cached

  it('keeps one copy of the conditions, port and address lists Mappings repeat, and each Mapping as it came', function () {
    const [a, b] = [cachedMapping(wireMapping('a')), cachedMapping(wireMapping('b'))]
    expect(b.status.conditions, 'the conditions').to.equal(a.status.conditions)
    expect(b.spec.ports, 'the ports').to.equal(a.spec.ports)
    expect(b.spec.addresses, 'the addresses').to.equal(a.spec.addresses)
    expect(b.spec.allowedSources, 'the allowed sources').to.equal(a.spec.allowedSources)
    expect(b.status.configuredAddresses, 'pods differ from Mapping to Mapping: not shared').to.not.equal(a.status.configuredAddresses)
    for (const [cached, name] of [[a, 'a'], [b, 'b']] as const) expect(JSON.stringify(cached)).to.equal(JSON.stringify(cachedMapping(wireMapping(name))))
  })

  it('a new version of one Mapping changes nothing of another that shared its conditions and ports', function () {
    const b = cachedMapping(wireMapping('b'))
    const before = JSON.stringify(b)
    const changed = wireMapping('a') as {spec: {ports: {port: number}[]}; status: {conditions: {status: string; message: string}[]}}
    changed.spec.ports[0]!.port = 81
    changed.status.conditions[1]!.status = 'False'
    changed.status.conditions[1]!.message = 'no ready endpoints for port 81; new connections are refused'
    const a = cachedMapping(changed)
    expect(JSON.stringify(b), 'the other Mapping').to.equal(before)
    expect(a.status.conditions[1]).to.include({status: 'False'})
    expect(a.spec.ports[0]).to.include({port: 81})
    expect(a.status.conditions[0], 'the Valid condition both still have').to.equal(b.status.conditions[0])
    expect(a.status.conditions).to.not.equal(b.status.conditions)
  })

  it('keeps one copy of the port lists Services and EndpointSlices repeat', function () {
    const service = (name: string) => cachedObject(SERVICE_KIND, {metadata: {name, namespace: 'shop'}, spec: {type: 'ClusterIP', clusterIP: '198.19.0.1', ports: [{name: 'http', port: 80, protocol: 'TCP', targetPort: 8080}]}}).spec as {ports: unknown}
    expect(service('a').ports).to.equal(service('b').ports)
    const slice = (name: string, port: number) => cachedObject(SLICE_KIND, {metadata: {name, namespace: 'shop'}, addressType: 'IPv4', ports: [{name: 'http', port, protocol: 'TCP'}], endpoints: []}).ports
    expect(slice('a', 8080)).to.equal(slice('b', 8080))
    expect(slice('c', 8081)).to.deep.equal([{name: 'http', port: 8081, protocol: 'TCP'}])
  })
})

describe('what the API cache keeps of Services and EndpointSlices', function () {
  it('keeps of a Service the fields the planner and exposures read, nothing else: of its ports their names, numbers and protocols', function () {
    const wire = {
      metadata: {
        name: 'web', namespace: 'shop', uid: 'u-web', resourceVersion: '7', generation: 2, creationTimestamp: '2026-01-01T00:00:00Z',
        labels: {app: 'web'}, annotations: {'smartnat.aureacentral.com/pool': 'edge', 'helm.sh/chart': 'web-1'}, managedFields: [{manager: 'helm'}],
      },
      spec: {
        type: 'LoadBalancer', clusterIP: '198.19.0.1', clusterIPs: ['198.19.0.1'], ipFamilies: ['IPv4'], selector: {app: 'web'},
        ports: [{name: 'http', port: 80, protocol: 'TCP'}], sessionAffinity: 'None', loadBalancerSourceRanges: ['198.18.50.0/24'],
      },
      status: {loadBalancer: {ingress: [{ip: '198.18.0.10', ipMode: 'Proxy'}]}, conditions: []},
    }
    expect(cachedObject({name: 'Service', apiVersion: 'v1'} as WatchedKind, JSON.parse(JSON.stringify(wire)))).to.deep.equal({
      apiVersion: 'v1', kind: 'Service',
      metadata: {name: 'web', namespace: 'shop', uid: 'u-web', resourceVersion: '7', generation: 2, creationTimestamp: '2026-01-01T00:00:00Z', annotations: {'smartnat.aureacentral.com/pool': 'edge'}},
      spec: {type: 'LoadBalancer', clusterIP: '198.19.0.1', ports: [{name: 'http', port: 80, protocol: 'TCP'}], sessionAffinity: 'None', loadBalancerSourceRanges: ['198.18.50.0/24']},
      status: {loadBalancer: {ingress: [{ip: '198.18.0.10', ipMode: 'Proxy'}]}},
    })
  })

  it('keeps of an EndpointSlice its names, version, Service label, ports and each endpoint\'s addresses and conditions', function () {
    const wire = {
      metadata: {
        name: 'web-abcde', namespace: 'shop', uid: 'u-slice', resourceVersion: '9', generation: 1, creationTimestamp: '2026-01-01T00:00:00Z',
        labels: {'kubernetes.io/service-name': 'web', 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io'}, ownerReferences: [{kind: 'Service', name: 'web'}],
      },
      addressType: 'IPv4',
      ports: [{name: 'http', port: 8080, protocol: 'TCP', appProtocol: 'http'}],
      endpoints: [{addresses: ['198.19.128.1'], conditions: {ready: true, serving: true, terminating: false}, nodeName: 'node-1', targetRef: {kind: 'Pod', name: 'web-1'}, zone: 'a'}],
    }
    expect(cachedObject({name: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1'} as WatchedKind, JSON.parse(JSON.stringify(wire)))).to.deep.equal({
      apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice',
      metadata: {name: 'web-abcde', namespace: 'shop', resourceVersion: '9', labels: {'kubernetes.io/service-name': 'web'}},
      addressType: 'IPv4',
      ports: [{name: 'http', port: 8080, protocol: 'TCP'}],
      endpoints: [{addresses: ['198.19.128.1'], conditions: {ready: true, serving: true, terminating: false}}],
    })
  })
})

describe('SharedValues', function () {
  it('gives back the value kept for the same JSON, prepares a value only when it keeps it, keeps no long text and never holds more than its limit', function () {
    const values = new SharedValues({limit: 2})
    const table = (values as unknown as {table: Map<string, unknown>}).table
    let prepared = 0
    const prepare = (list: string[]) => {
      prepared++
      return [...list]
    }
    const first = values.share(['a', 'b'], prepare)
    expect(values.share(JSON.parse('["a","b"]') as string[], prepare)).to.equal(first)
    expect(prepared).to.equal(1)
    expect(values.share(['b', 'a'])).to.deep.equal(['b', 'a'])
    expect(values.share({x: 1, y: 2})).to.not.equal(values.share({y: 2, x: 1}))
    expect(table.size).to.be.at.most(2)
    expect(values.share('text')).to.equal('text')
    expect(values.share(null)).to.equal(null)
    // A long text is not kept beside its value: the next one of the same text is a copy of its own.
    const long = Array.from({length: 200}, (_, i) => `198.18.${i}.0/24`)
    expect(values.share(long, prepare)).to.not.equal(values.share([...long], prepare))
    expect(table.size).to.be.at.most(2)
  })
})
