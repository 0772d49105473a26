/**
 * The API cache shares objects between cached objects (src/lib/source/kube/trim.ts): nothing that
 * reads them may modify them, and every cached object of a kind has one hidden class.
 */
import {setFlagsFromString} from 'node:v8'
import {expect} from 'chai'
import {withPendingAllocations} from '../../src/lib/allocate/pending.js'
import {DEFAULT_DYNAMIC_PORTS} from '../../src/lib/mapping/dynamic.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {withServiceExposures} from '../../src/lib/plan/exposures.js'
import {PlanMemo} from '../../src/lib/plan/memo.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import type {KindName, WatchedKind, WireObject} from '../../src/lib/source/kube/kinds.js'
import {cachedObject} from '../../src/lib/source/kube/trim.js'
import {hasStaleKeys} from '../../src/lib/sync/live-hosts.js'
import {desiredStatus, ownAddresses} from '../../src/lib/sync/status.js'

const HOST: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}, {address: '198.18.0.11' as Ipv4, prefixLength: 24}]}]}
const kind = (name: KindName, apiVersion: string) => ({name, apiVersion}) as WatchedKind
const KINDS = {Mapping: kind('Mapping', 'smartnat.aureacentral.com/v1alpha1'), Service: kind('Service', 'v1'), EndpointSlice: kind('EndpointSlice', 'discovery.k8s.io/v1')}
const stamp = '2026-12-03T10:00:00Z'
const conditions = (address: string) => [
  {type: 'Valid', status: 'True', reason: 'Valid', message: 'spec is valid and its Service resolves', lastTransitionTime: stamp, observedGeneration: 1},
  {type: 'Ready', status: 'True', reason: 'Configured', message: `serving on ${address}`, lastTransitionTime: stamp, observedGeneration: 1},
]

/** Mapping, Service and EndpointSlice i as the API sends them: Mappings 0 and 2 on one address with the same ports and conditions. */
function wire(i: number, port = 80): Record<keyof typeof KINDS, WireObject> {
  const address = `198.18.0.${10 + (i % 2)}`
  const metadata = (name: string, uid: string) => ({namespace: 'shop', name, uid, resourceVersion: String(100 + i), generation: 1, creationTimestamp: '2026-01-01T00:00:00Z', labels: {app: 'web'}})
  return JSON.parse(JSON.stringify({
    Mapping: {
      metadata: metadata(`m-${i}`, `u-m-${i}`),
      spec: {addresses: [address], allowedSources: ['198.18.100.0/24'], serviceName: `web-${i}`, mode: 'service', ports: [{port: port + Math.floor(i / 2), protocol: 'tcp', servicePort: 8080}]},
      status: {invalid: 'no', serviceVIP: `198.19.0.${i + 1}`, configuredAddresses: {[address]: {podIPs: [`198.19.128.${i + 1}`], host: 'edge-1'}}, conditions: conditions(address), observedGeneration: 1},
    },
    Service: {metadata: metadata(`web-${i}`, `u-s-${i}`), spec: {type: 'ClusterIP', clusterIP: `198.19.0.${i + 1}`, clusterIPs: [`198.19.0.${i + 1}`], ports: [{name: 'http', port: 8080, protocol: 'TCP', targetPort: 8080}]}},
    EndpointSlice: {
      metadata: {...metadata(`web-${i}-abcde`, `u-e-${i}`), labels: {'kubernetes.io/service-name': `web-${i}`}},
      addressType: 'IPv4', ports: [{name: 'http', port: 8080, protocol: 'TCP'}],
      endpoints: [{addresses: [`198.19.128.${i + 1}`], conditions: {ready: true, serving: true, terminating: false}, nodeName: 'node-1'}],
    },
  })) as Record<keyof typeof KINDS, WireObject>
}

function cached(count: number, port?: number) {
  const cluster = Array.from({length: count}, (_, i) => wire(i, port))
  const of = (name: keyof typeof KINDS) => cluster.map((objects) => cachedObject(KINDS[name], objects[name]))
  return {mappings: of('Mapping'), services: of('Service'), endpointSlices: of('EndpointSlice')}
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const item of Object.values(value)) deepFreeze(item)
  }
  return value
}

describe('readers of the API cache', function () {
  it('plan, expose, allocate and write statuses without modifying a cached object, which other cached objects may share parts of', function () {
    const {mappings, services, endpointSlices} = deepFreeze(cached(4))
    const snapshot = (list: WireObject[]): Snapshot => withServiceExposures(
      withPendingAllocations({mappings: list, services, endpointSlices, addressPools: [], namespaces: []} as unknown as Snapshot, {defaultLoadBalancer: false, dynamicPorts: DEFAULT_DYNAMIC_PORTS, allocates: true}),
      false,
    )
    const memo = new PlanMemo()
    const first = memo.plan(snapshot(mappings), HOST, DEFAULT_PLAN_OPTIONS)
    expect(first.verdicts.map((v) => v.invalid)).to.deep.equal(['no', 'no', 'no', 'no'])
    // A pass after one change: Mapping 1 with a new port, cached again, frozen like the others.
    const changed = deepFreeze(cachedObject(KINDS.Mapping, wire(1, 90).Mapping))
    const second = memo.plan(snapshot([mappings[0]!, changed, ...mappings.slice(2)]), HOST, DEFAULT_PLAN_OPTIONS)
    expect(second.verdicts[1]!.invalid).to.equal('no')
    expect(plan(snapshot(mappings), HOST, DEFAULT_PLAN_OPTIONS).verdicts).to.have.length(4)
    const own = ownAddresses(HOST)
    for (const [i, mapping] of mappings.entries()) {
      expect(desiredStatus(mapping as never, first.verdicts[i]!, own, new Date(stamp), 'edge-1', {hosts: new Set(['edge-1'])} as never).patch, `status of ${i}`).to.equal(undefined)
      desiredStatus(mapping as never, {...first.verdicts[i]!, valid: false, invalid: 'gone'}, own, new Date(), 'edge-2')
    }
    expect(hasStaleKeys(mappings as never, {hosts: new Set(['edge-2'])} as never)).to.equal(true)
  })
})

describe('the shapes of cached objects', function () {
  // V8's own checks, allowed from here on for code compiled after this (the test's two functions).
  setFlagsFromString('--allow-natives-syntax')
  const sameMap = new Function('a', 'b', 'return %HaveSameMap(a, b)') as (a: unknown, b: unknown) => boolean
  const fastProperties = new Function('a', 'return %HasFastProperties(a)') as (a: unknown) => boolean

  /** Every object in `value` by its path, arrays' items under `[]`. */
  function objectsOf(value: unknown, path = '', found = new Map<string, unknown>()): Map<string, unknown> {
    if (typeof value !== 'object' || value === null) return found
    found.set(path, value)
    for (const [key, item] of Object.entries(value)) objectsOf(item, Array.isArray(value) ? `${path}[]` : /^\d/.test(key) ? `${path}.ADDRESS` : `${path}.${key}`, found)
    return found
  }

  for (const name of ['mappings', 'services', 'endpointSlices'] as const) {
    it(`every cached ${name.replace(/s$/, '')} has the same hidden class as the next, part by part, none kept as a dictionary`, function () {
      // Ports no other test caches: a part shared with one that a test froze has a hidden class of its own (frozen), and so does whatever holds it.
      // Objects made after the first few: V8 settles the hidden classes of a new shape over its first objects, which move to the settled one when next read.
      const [a, b] = [16, 18].map((i) => cached(20, 7000)[name][i]).map((object) => objectsOf(object))
      expect([...a!.keys()]).to.deep.equal([...b!.keys()])
      for (const [path, object] of a!) {
        expect(fastProperties(object), `${path}: fast properties`).to.equal(true)
        expect(sameMap(object, b!.get(path)), `${path}: the same hidden class`).to.equal(true)
      }
    })
  }
})
