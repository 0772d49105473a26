/**
 * The two shortcuts of a watch pass, checked against planning from scratch on random clusters: a
 * pass skipped because its inputs are the same would have planned exactly what the last one did,
 * and a plan that reuses a memo equals one made without it.
 */
import {expect} from 'chai'
import fc from 'fast-check'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {PlanMemo} from '../../src/lib/plan/memo.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {SettledInputs} from '../../src/lib/sync/inputs.js'
import {heldEntries, heldKeys} from '../support/held.js'

const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}, {address: '198.18.0.11' as Ipv4, prefixLength: 24}]}]}
const options = {...DEFAULT_PLAN_OPTIONS, snat: true}
const SERVICES = ['web', 'dns', 'api']

const mapping = fc.record({
  name: fc.constantFrom('a', 'b', 'c', 'd'),
  service: fc.constantFrom(...SERVICES),
  address: fc.constantFrom('198.18.0.10', '198.18.0.11', '198.18.9.9'),
  ports: fc.uniqueArray(fc.constantFrom(80, 81, 443), {minLength: 1, maxLength: 2}),
  created: fc.integer({min: 0, max: 3}),
  generation: fc.integer({min: 1, max: 2}),
})

function mappingOf(m: {name: string; service: string; address: string; ports: number[]; created: number; generation: number}): MappingResource {
  return {
    metadata: {namespace: 'shop', name: m.name, generation: m.generation, creationTimestamp: `2025-01-0${m.created + 1}T00:00:00Z`, resourceVersion: '1'},
    spec: {addresses: [m.address], serviceName: m.service, ports: m.ports.map((port) => ({port}))},
  }
}

function serviceOf(name: string, vip: number): ServiceResource {
  return {metadata: {namespace: 'shop', name}, spec: {clusterIP: `198.19.0.${vip}`, ports: [{port: 80}, {port: 81}, {port: 443}]}}
}

function sliceOf(service: string, pods: number[]): EndpointSliceResource {
  return {
    metadata: {namespace: 'shop', name: `${service}-1`, labels: {'kubernetes.io/service-name': service}},
    addressType: 'IPv4',
    endpoints: pods.map((pod) => ({addresses: [`198.19.200.${pod}`]})),
  }
}

const cluster = fc.record({
  mappings: fc.uniqueArray(mapping, {selector: (m) => m.name, maxLength: 4}).map((ms) => ms.map(mappingOf)),
  services: fc.subarray(SERVICES).chain((names) => fc.tuple(...names.map((name) => fc.integer({min: 1, max: 3}).map((vip) => serviceOf(name, vip))))),
  endpointSlices: fc.subarray(SERVICES).chain((names) =>
    fc.tuple(...names.map((name) => fc.uniqueArray(fc.integer({min: 1, max: 6}), {maxLength: 3}).map((pods) => sliceOf(name, pods)))),
  ),
}) as fc.Arbitrary<Snapshot>

/** One change a source could report: an object replaced by a copy (maybe edited), added or removed. */
type Change = {kind: 'mappings' | 'services' | 'endpointSlices'; index: number; how: 'copy' | 'status' | 'edit' | 'remove'} | {kind: 'add'; object: Snapshot}

const change: fc.Arbitrary<Change> = fc.oneof(
  fc.record({kind: fc.constantFrom('mappings', 'services', 'endpointSlices'), index: fc.nat(5), how: fc.constantFrom('copy', 'status', 'edit', 'remove')}) as fc.Arbitrary<Change>,
  cluster.map((object): Change => ({kind: 'add', object})),
)

function applyChange(snapshot: Snapshot, c: Change): Snapshot {
  if (c.kind === 'add') return {mappings: [...snapshot.mappings, ...c.object.mappings.slice(0, 1)], services: [...snapshot.services, ...c.object.services.slice(0, 1)], endpointSlices: snapshot.endpointSlices}
  const list = snapshot[c.kind] as object[]
  if (list.length === 0) return snapshot
  const i = c.index % list.length
  const old = list[i] as {metadata: Record<string, unknown>; spec?: Record<string, unknown>; status?: unknown; endpoints?: unknown[]}
  let next: object | undefined
  if (c.how === 'copy') next = structuredClone(old)
  else if (c.how === 'status') next = {...old, metadata: {...old.metadata, resourceVersion: '2', labels: {touched: 'yes'}}, status: {invalid: 'no'}}
  else if (c.how === 'edit') next = c.kind === 'endpointSlices' ? {...old, endpoints: []} : {...old, spec: {...old.spec, clusterIP: '198.19.0.9', ports: [{port: 80}]}}
  const replaced = list.flatMap((object, j) => (j !== i ? [object] : next ? [next] : []))
  return {...snapshot, [c.kind]: replaced}
}

/** Whether the watch loop, having settled `first`, would skip a pass over `second`. */
function sameInputs(first: Snapshot, second: Snapshot): boolean {
  const settled = new SettledInputs()
  settled.settle(first)
  return settled.same(second)
}

describe('watch pass shortcuts on random clusters', () => {
  it('a pass skipped for the same inputs would have planned exactly what the last one did', () => {
    fc.assert(
      fc.property(cluster, fc.array(change, {maxLength: 4}), (first, changes) => {
        const second = changes.reduce(applyChange, first)
        if (sameInputs(first, second)) {
          expect(JSON.stringify(plan(second, host, options))).to.equal(JSON.stringify(plan(first, host, options)))
        }
      }),
      {numRuns: 400, seed: 7101},
    )
  })

  it('plans with a memo kept across a sequence of changes equal plans made without it', () => {
    fc.assert(
      // Each step may also change the port limit, which a memo must not carry across.
      fc.property(cluster, fc.array(fc.tuple(fc.option(change), fc.constantFrom(1, 50)), {maxLength: 6}), (first, steps) => {
        const memo = new PlanMemo()
        let snapshot = first
        for (const [c, maxPorts] of [[null, 50] as const, ...steps]) {
          if (c) snapshot = applyChange(snapshot, c)
          const opts = {...options, maxPortsPerMapping: maxPorts}
          expect(JSON.stringify(plan(snapshot, host, opts, memo))).to.equal(JSON.stringify(plan(snapshot, host, opts)))
        }
      }),
      {numRuns: 300, seed: 7102},
    )
  })

  it('a tracker that settled one snapshot after another decides as one that settled only the last', () => {
    fc.assert(
      fc.property(cluster, fc.array(change, {minLength: 1, maxLength: 6}), fc.array(change, {maxLength: 3}), (first, steps, more) => {
        const settled = new SettledInputs()
        let snapshot = first
        settled.settle(snapshot)
        for (const c of steps) {
          snapshot = applyChange(snapshot, c)
          settled.settle(snapshot)
        }
        const next = more.reduce(applyChange, snapshot)
        expect(settled.same(next)).to.equal(sameInputs(snapshot, next))
      }),
      {numRuns: 300, seed: 7104},
    )
  })

  it('checks one after the other, each against the last one found the same, decide as checks against the settled snapshot', () => {
    fc.assert(
      fc.property(cluster, fc.array(change, {minLength: 1, maxLength: 8}), (first, steps) => {
        const settled = new SettledInputs()
        settled.settle(first)
        let snapshot = first
        for (const c of steps) {
          snapshot = applyChange(snapshot, c)
          expect(settled.same(snapshot)).to.equal(sameInputs(first, snapshot))
        }
      }),
      {numRuns: 400, seed: 7105},
    )
  })

  it('after a settled pass dropped the Mapping naming a Service, that Service\'s changes no longer run a pass', () => {
    const m = mappingOf({name: 'a', service: 'web', address: '198.18.0.10', ports: [80], created: 0, generation: 1})
    const withIt: Snapshot = {mappings: [m], services: [serviceOf('web', 1)], endpointSlices: [sliceOf('web', [1])]}
    const without: Snapshot = {...withIt, mappings: []}
    const settled = new SettledInputs()
    settled.settle(withIt)
    expect(settled.same({...withIt, endpointSlices: [sliceOf('web', [2])]}), 'named').to.equal(false)
    settled.settle(without)
    expect(settled.same({...without, endpointSlices: [sliceOf('web', [2])]}), 'no longer named').to.equal(true)
    settled.settle(withIt)
    expect(settled.same({...withIt, services: [serviceOf('web', 2)]}), 'named again').to.equal(false)
  })

  it('counts the Services Mappings name under the Mappings\' own namespace and name strings, making no key per Service', () => {
    const names = ['a', 'b', 'c']
    const mappings = names.map((name) => mappingOf({name, service: name === 'c' ? 'web' : 'dns', address: '198.18.0.10', ports: [80], created: 0, generation: 1}))
    const settled = new SettledInputs()
    settled.settle({mappings, services: [], endpointSlices: []})
    // One namespace, two Services: a `namespace/name` key per Service would join the two.
    expect(heldKeys(settled).sort()).to.deep.equal(['dns', 'shop', 'web'])
    expect(heldEntries(settled)).to.equal(3)
  })

  it('the random clusters do exercise both outcomes', () => {
    const samples = fc.sample(fc.tuple(cluster, fc.array(change, {maxLength: 4})), {numRuns: 200, seed: 7103})
    const verdicts = samples.map(([first, changes]) => sameInputs(first, changes.reduce(applyChange, first)))
    expect(verdicts.filter(Boolean).length, 'skipped').to.be.greaterThan(20)
    expect(verdicts.filter((v) => !v).length, 'run').to.be.greaterThan(20)
    const planned = samples.map(([first]) => plan(first, host, options))
    expect(planned.filter((p) => p.model.mappings.length > 0).length, 'with programmed Mappings').to.be.greaterThan(50)
  })
})
