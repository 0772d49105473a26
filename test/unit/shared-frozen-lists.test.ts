/** One frozen copy of equal small lists (SharedValues with frozenList, src/lib/net/shared-values.ts), as the plan keeps a Mapping's ports. */
import {expect} from 'chai'
import {frozenList, SharedValues} from '../../src/lib/net/shared-values.js'
import {resolveCandidate, serviceIndex, type Candidate} from '../../src/lib/plan/candidates.js'
import {DEFAULT_PLAN_OPTIONS} from '../../src/lib/plan/model.js'
import type {MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import {MAPPING_API_VERSION} from '../../src/lib/mapping/types.js'

describe('shared frozen lists', () => {
  it('gives equal lists one copy, and a different list its own', () => {
    const lists = new SharedValues({limit: 10})
    const first = lists.share([{port: 80}, {port: 443}], frozenList)
    expect(lists.share([{port: 80}, {port: 443}], frozenList)).to.equal(first)
    expect(lists.share([{port: 443}, {port: 80}], frozenList)).not.to.equal(first)
    expect(first).to.deep.equal([{port: 80}, {port: 443}])
  })

  it('freezes the copy it shares and its items: a change made for one holder would reach all', () => {
    const shared = new SharedValues({limit: 10}).share([{port: 80}], frozenList)
    expect(() => shared.push({port: 81})).to.throw(TypeError)
    expect(Object.isFrozen(shared[0])).to.equal(true)
  })

  it('starts again when it holds its limit', () => {
    const lists = new SharedValues({limit: 2})
    const first = lists.share([{port: 1}], frozenList)
    lists.share([{port: 2}], frozenList)
    lists.share([{port: 3}], frozenList)
    expect(lists.share([{port: 1}], frozenList)).not.to.equal(first)
  })

  it('gives the candidates of two Mappings listing the same ports, addresses and sources one list of each', () => {
    const mapping = (name: string): MappingResource =>
      ({
        apiVersion: MAPPING_API_VERSION,
        kind: 'Mapping',
        metadata: {namespace: 'default', name},
        spec: {serviceName: 'web', addresses: ['198.18.0.10'], ports: [{port: 80, protocol: 'tcp', servicePort: 8080}]},
      }) as unknown as MappingResource
    const service = {metadata: {namespace: 'default', name: 'web'}, spec: {clusterIP: '198.19.0.1', ports: [{port: 8080, protocol: 'TCP'}]}} as unknown as ServiceResource
    const services = serviceIndex([service])
    const [a, b] = ['a', 'b'].map((name) => resolveCandidate(mapping(name), DEFAULT_PLAN_OPTIONS, services) as Candidate)
    expect(a!.ports).to.equal(b!.ports)
    expect(a!.servicePorts).to.equal(b!.servicePorts)
    expect(a!.addresses).to.equal(b!.addresses)
    expect(a!.allowedSources).to.equal(b!.allowedSources)
  })
})
