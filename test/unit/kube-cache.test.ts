/** What the API cache keeps of Mappings and Services (src/lib/source/kube/trim.ts). */
import {expect} from 'chai'
import type {WatchedKind} from '../../src/lib/source/kube/kinds.js'
import {SharedStrings} from '../../src/lib/net/shared-strings.js'
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
