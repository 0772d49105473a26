import {expect} from 'chai'
import {namespaceLabels} from '../../src/lib/mapping/namespace.js'
import type {WatchedKind} from '../../src/lib/source/kube/kinds.js'
import {cachedObject} from '../../src/lib/source/kube/trim.js'
import {SettledInputs} from '../../src/lib/sync/inputs.js'

const NAMESPACE_KIND = {name: 'Namespace', apiVersion: 'v1'} as WatchedKind

describe('namespaces for AddressPool selectors', function () {
  it('the API cache keeps a Namespace\'s name, identity and labels, nothing else', function () {
    const wire = {
      metadata: {
        name: 'shop', uid: 'u1', resourceVersion: '7', creationTimestamp: '2025-01-01T00:00:00Z', labels: {tier: 'edge', 'kubernetes.io/metadata.name': 'shop'},
        annotations: {'kubectl.kubernetes.io/last-applied-configuration': '{}', note: 'x'}, managedFields: [{manager: 'kubectl'}],
      },
      spec: {finalizers: ['kubernetes']},
      status: {phase: 'Active'},
    }
    expect(cachedObject(NAMESPACE_KIND, wire)).to.deep.equal({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {name: 'shop', uid: 'u1', resourceVersion: '7', creationTimestamp: '2025-01-01T00:00:00Z', labels: {tier: 'edge', 'kubernetes.io/metadata.name': 'shop'}},
    })
  })

  it('labels by namespace name, an unlabelled namespace with none', function () {
    const labels = namespaceLabels([{metadata: {name: 'shop', labels: {tier: 'edge'}}}, {metadata: {name: 'ops'}}])
    expect([...labels]).to.deep.equal([['shop', {tier: 'edge'}], ['ops', {}]])
  })

  it('a namespace whose labels changed is a change for the watch loop (allocation reads them)', function () {
    const settled = new SettledInputs()
    const shop = {metadata: {name: 'shop', resourceVersion: '1', labels: {tier: 'edge'}}}
    settled.settle({mappings: [], services: [], endpointSlices: [], namespaces: [shop]})
    expect(settled.same({mappings: [], services: [], endpointSlices: [], namespaces: [shop]})).to.equal(true)
    const relabelled = {metadata: {name: 'shop', resourceVersion: '2', labels: {tier: 'core'}}}
    expect(settled.same({mappings: [], services: [], endpointSlices: [], namespaces: [relabelled]})).to.equal(false)
  })
})
