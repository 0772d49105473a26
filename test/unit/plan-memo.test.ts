import {expect} from 'chai'
import fc from 'fast-check'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {LOAD_BALANCER_CLASS} from '../../src/lib/mapping/loadbalancer.js'
import {withServiceExposures} from '../../src/lib/plan/exposures.js'
import {PlanMemo} from '../../src/lib/plan/memo.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type PlanOptions, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticPods, syntheticSnapshot, withSlice} from '../../bench/synthetic.js'
import {countWork} from '../support/work-counter.js'

// Two local addresses on two interfaces, one that is not local: conflicts are decided over all of them.
const ADDRESSES = ['198.18.0.10', '198.18.0.11', '198.18.1.20', '198.18.9.9']
const HOSTS: HostInfo[] = [
  {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}, {address: '198.18.0.11' as Ipv4, prefixLength: 24}]}, {name: 'eth2', addresses: [{address: '198.18.1.20' as Ipv4, prefixLength: 24}]}]},
  {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.11' as Ipv4, prefixLength: 24}]}]},
]
const NAMES = ['a', 'b', 'c', 'd', 'e', 'f']
const NAMESPACES = ['shop', 'ops']
const SERVICES = ['web', 'dns', 'api']

const mappingArb = fc.record({
  namespace: fc.constantFrom(...NAMESPACES),
  name: fc.constantFrom(...NAMES),
  service: fc.constantFrom(...SERVICES, ...SERVICES, 'missing'),
  addresses: fc.uniqueArray(fc.constantFrom(...ADDRESSES), {minLength: 1, maxLength: 2}),
  ports: fc.uniqueArray(fc.record({port: fc.constantFrom(80, 80, 53), protocol: fc.constantFrom('TCP', 'TCP', 'UDP')}), {minLength: 1, maxLength: 2, selector: (p) => `${p.protocol}${p.port}`}),
  // Ties and a missing timestamp decide conflicts by name.
  created: fc.option(fc.integer({min: 0, max: 2}), {nil: undefined}),
  generation: fc.integer({min: 1, max: 3}),
  direct: fc.boolean(),
  invalid: fc.integer({min: 0, max: 9}).map((n) => n === 0),
  sources: fc.constantFrom(undefined, ['198.18.50.0/24'], ['198.18.50.0/24', '198.18.60.1']),
})

type ValueOf<A> = A extends fc.Arbitrary<infer T> ? T : never
type MappingSpec = ValueOf<typeof mappingArb>

function mappingOf(m: MappingSpec): MappingResource {
  return {
    metadata: {
      namespace: m.namespace,
      name: m.name,
      generation: m.generation,
      ...(m.created === undefined ? {} : {creationTimestamp: `2025-01-0${m.created + 1}T00:00:00Z`}),
    },
    spec: {
      addresses: m.addresses,
      serviceName: m.service,
      ports: m.ports.map(({port, protocol}) => ({port: m.invalid ? 0 : port, protocol, servicePort: port === 53 ? 53 : 80})),
      ...(m.direct ? {mode: 'direct'} : {}),
      ...(m.sources ? {allowedSources: m.sources} : {}),
    },
  }
}

const serviceArb = fc.record({
  namespace: fc.constantFrom(...NAMESPACES),
  name: fc.constantFrom(...SERVICES),
  vip: fc.integer({min: 1, max: 3}),
  affinity: fc.boolean(),
})

function serviceOf(s: ValueOf<typeof serviceArb>): ServiceResource {
  return {
    metadata: {namespace: s.namespace, name: s.name},
    spec: {
      clusterIP: `198.19.0.${s.vip}`,
      ports: [
        {name: 'http', port: 80, protocol: 'TCP', targetPort: 8080},
        {name: 'http-udp', port: 80, protocol: 'UDP', targetPort: 8080},
        {name: 'dns', port: 53, protocol: 'UDP'},
        {name: 'dns-tcp', port: 53, protocol: 'TCP'},
      ],
      ...(s.affinity ? {sessionAffinity: 'ClientIP'} : {}),
    },
  }
}

// LoadBalancer Services: planned as exposures that contest endpoints with the Mappings.
const loadBalancerArb = fc.record({
  namespace: fc.constantFrom(...NAMESPACES),
  name: fc.constantFrom(...SERVICES),
  vip: fc.integer({min: 1, max: 3}),
  address: fc.option(fc.constantFrom(...ADDRESSES), {nil: undefined}),
  created: fc.option(fc.integer({min: 0, max: 2}), {nil: undefined}),
  classless: fc.boolean(),
  direct: fc.boolean(),
  sources: fc.constantFrom(undefined, ['198.18.50.0/24']),
  ports: fc.constantFrom([80], [53], [80, 53]),
})

function loadBalancerOf(l: ValueOf<typeof loadBalancerArb>): ServiceResource {
  return {
    metadata: {
      namespace: l.namespace,
      name: l.name,
      ...(l.created === undefined ? {} : {creationTimestamp: `2025-01-0${l.created + 1}T00:00:00Z`}),
      ...(l.direct ? {annotations: {'smartnat.aureacentral.com/mode': 'direct'}} : {}),
    },
    spec: {
      type: 'LoadBalancer',
      ...(l.classless ? {} : {loadBalancerClass: LOAD_BALANCER_CLASS}),
      clusterIP: `198.19.0.${l.vip}`,
      ports: l.ports.map((port) => ({name: port === 53 ? 'dns' : 'http', port, protocol: port === 53 ? 'UDP' : 'TCP'})),
      ...(l.sources ? {loadBalancerSourceRanges: [...l.sources]} : {}),
    },
    ...(l.address === undefined ? {} : {status: {loadBalancer: {ingress: [{ip: l.address, ipMode: 'Proxy' as const}]}}}),
  }
}

const sliceArb = fc.record({
  namespace: fc.constantFrom(...NAMESPACES),
  service: fc.constantFrom(...SERVICES),
  name: fc.constantFrom('x', 'y'),
  // Pods shared across Services: egress hands each to the oldest Mapping.
  pods: fc.array(fc.record({pod: fc.integer({min: 1, max: 5}), ready: fc.constantFrom(true, false, undefined), terminating: fc.boolean()}), {maxLength: 3}),
})

function sliceOf(e: ValueOf<typeof sliceArb>): EndpointSliceResource {
  return {
    metadata: {namespace: e.namespace, name: `${e.service}-${e.name}`, labels: {'kubernetes.io/service-name': e.service}},
    addressType: 'IPv4',
    ports: [
      {name: 'http', port: 8080, protocol: 'TCP'},
      {name: 'http-udp', port: 8080, protocol: 'UDP'},
      {name: 'dns', port: 53, protocol: 'UDP'},
      {name: 'dns-tcp', port: 53, protocol: 'TCP'},
    ],
    endpoints: e.pods.map(({pod, ready, terminating}) => ({
      addresses: [`198.19.200.${pod}`],
      conditions: {...(ready === undefined ? {} : {ready}), serving: true, terminating},
    })),
  }
}

const keyOf = (o: {metadata?: {namespace?: string; name?: string}}) => `${o.metadata?.namespace}/${o.metadata?.name}`

/** Puts `object` where one of its name was, as a source replaces a changed object, or at the end. */
function upsert<T extends {metadata?: {namespace?: string; name?: string}}>(list: readonly T[], object: T): T[] {
  const at = list.findIndex((o) => keyOf(o) === keyOf(object))
  return at < 0 ? [...list, object] : list.map((o, i) => (i === at ? object : o))
}

type Step =
  | {kind: 'mapping'; value: MappingSpec}
  | {kind: 'service'; value: ValueOf<typeof serviceArb>}
  | {kind: 'loadBalancer'; value: ValueOf<typeof loadBalancerArb>}
  | {kind: 'defaultLoadBalancer'}
  | {kind: 'slice'; value: ValueOf<typeof sliceArb>}
  | {kind: 'remove'; list: keyof Snapshot; index: number}
  | {kind: 'copy'; list: keyof Snapshot; index: number}
  | {kind: 'status'; index: number}
  | {kind: 'deleting'; index: number}
  | {kind: 'duplicate'; index: number}
  | {kind: 'shuffle'}
  | {kind: 'host'; index: number}
  | {kind: 'snat'}

const LISTS: (keyof Snapshot)[] = ['mappings', 'services', 'endpointSlices']

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {weight: 5, arbitrary: mappingArb.map((value) => ({kind: 'mapping' as const, value}))},
  {weight: 2, arbitrary: serviceArb.map((value) => ({kind: 'service' as const, value}))},
  {weight: 4, arbitrary: sliceArb.map((value) => ({kind: 'slice' as const, value}))},
  {weight: 2, arbitrary: fc.record({kind: fc.constant('remove' as const), list: fc.constantFrom(...LISTS), index: fc.nat(9)})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('copy' as const), list: fc.constantFrom(...LISTS), index: fc.nat(9)})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('status' as const), index: fc.nat(9)})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('deleting' as const), index: fc.nat(9)})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('duplicate' as const), index: fc.nat(9)})},
  {weight: 1, arbitrary: fc.constant({kind: 'shuffle' as const})},
  {weight: 1, arbitrary: fc.record({kind: fc.constant('host' as const), index: fc.nat(1)})},
  {weight: 1, arbitrary: fc.constant({kind: 'snat' as const})},
  {weight: 2, arbitrary: loadBalancerArb.map((value) => ({kind: 'loadBalancer' as const, value}))},
  {weight: 1, arbitrary: fc.constant({kind: 'defaultLoadBalancer' as const})},
)

interface World {
  snapshot: Snapshot
  host: HostInfo
  options: PlanOptions
  defaultLoadBalancer?: boolean
}

function applyStep(world: World, step: Step): World {
  const {snapshot} = world
  const pick = <T,>(list: readonly T[], index: number) => (list.length === 0 ? undefined : list[index % list.length])
  switch (step.kind) {
    case 'mapping':
      return {...world, snapshot: {...snapshot, mappings: upsert(snapshot.mappings, mappingOf(step.value))}}
    case 'service':
      return {...world, snapshot: {...snapshot, services: upsert(snapshot.services, serviceOf(step.value))}}
    case 'slice':
      return {...world, snapshot: {...snapshot, endpointSlices: upsert(snapshot.endpointSlices, sliceOf(step.value))}}
    case 'remove': {
      const list = snapshot[step.list] as object[]
      const gone = pick(list, step.index)
      return {...world, snapshot: {...snapshot, [step.list]: list.filter((o) => o !== gone)}}
    }
    case 'copy': {
      const list = snapshot[step.list] as object[]
      const old = pick(list, step.index)
      return {...world, snapshot: {...snapshot, [step.list]: list.map((o) => (o === old ? structuredClone(o) : o))}}
    }
    case 'status': {
      const old = pick(snapshot.mappings, step.index)
      const next = old && {...old, metadata: {...old.metadata, resourceVersion: '9'}, status: {invalid: 'no'}}
      return {...world, snapshot: {...snapshot, mappings: snapshot.mappings.map((o) => (o === old ? next! : o))}}
    }
    case 'deleting': {
      // Deleted while a finalizer holds it: it stops contesting endpoints, which may free them for others.
      const old = pick(snapshot.mappings, step.index)
      const next = old && {...old, metadata: {...old.metadata, deletionTimestamp: '2025-02-01T00:00:00Z', finalizers: ['mapping.finalizers.aureacentral.com']}}
      return {...world, snapshot: {...snapshot, mappings: snapshot.mappings.map((o) => (o === old ? next! : o))}}
    }
    case 'duplicate': {
      const old = pick(snapshot.mappings, step.index)
      return old ? {...world, snapshot: {...snapshot, mappings: [...snapshot.mappings, {...old, spec: {...old.spec!, addresses: ['198.18.0.11']}}]}} : world
    }
    case 'shuffle':
      return {...world, snapshot: {mappings: [...snapshot.mappings].reverse(), services: [...snapshot.services].reverse(), endpointSlices: [...snapshot.endpointSlices].reverse()}}
    case 'host':
      return {...world, host: HOSTS[step.index]!}
    case 'snat':
      return {...world, options: {...world.options, snat: !world.options.snat}}
    case 'loadBalancer':
      return {...world, snapshot: {...snapshot, services: upsert(snapshot.services, loadBalancerOf(step.value))}}
    case 'defaultLoadBalancer':
      return {...world, defaultLoadBalancer: !world.defaultLoadBalancer}
  }
}

// Every Service there from the start, so that most Mappings resolve and contest endpoints.
function startingWorld(): World {
  const services = NAMESPACES.flatMap((namespace) => SERVICES.map((name, i) => serviceOf({namespace, name, vip: i + 1, affinity: false})))
  return {snapshot: {mappings: [], services, endpointSlices: []}, host: HOSTS[0]!, options: {...DEFAULT_PLAN_OPTIONS, snat: true}}
}

describe('plan with a memo across passes (incremental re-plan)', () => {
  it('plans exactly what a whole re-plan gives, over random sequences of changes', () => {
    fc.assert(
      fc.property(fc.array(stepArb, {minLength: 1, maxLength: 40}), (steps) => {
        const memo = new PlanMemo()
        let world = startingWorld()
        for (const [i, step] of steps.entries()) {
          world = applyStep(world, step)
          // As a source hands snapshots over: the LoadBalancer Services it serves among the Mappings.
          const snapshot = withServiceExposures(world.snapshot, world.defaultLoadBalancer ?? false)
          const kept = plan(snapshot, world.host, world.options, memo)
          const whole = plan(snapshot, world.host, world.options)
          expect(JSON.stringify(kept), `after step ${i} (${step.kind})`).to.equal(JSON.stringify(whole))
        }
      }),
      {numRuns: 400, seed: 19_002},
    )
  })

  it('the random sequences reach conflicts, egress, direct groups and re-plans of a few Mappings', () => {
    const seen = {conflicts: 0, egress: 0, groups: 0, partial: 0, loadBalancers: 0}
    for (const steps of fc.sample(fc.array(stepArb, {minLength: 10, maxLength: 40}), {numRuns: 100, seed: 19_003})) {
      const memo = new PlanMemo()
      let world = startingWorld()
      for (const step of steps) {
        world = applyStep(world, step)
        const planned = plan(withServiceExposures(world.snapshot, world.defaultLoadBalancer ?? false), world.host, world.options, memo)
        if (planned.verdicts.some((v) => v.invalid.includes('already mapped by'))) seen.conflicts++
        if (planned.model.mappings.some((m) => m.name.startsWith('svc.'))) seen.loadBalancers++
        if (planned.model.egress.length > 0) seen.egress++
        if (planned.model.mappings.some((m) => (m.groups ?? []).some((g) => g.members.length > 0))) seen.groups++
        if (memo.replanned < planned.verdicts.length) seen.partial++
      }
    }
    expect(seen.conflicts, 'plans with a conflict').to.be.greaterThan(100)
    expect(seen.egress, 'plans with egress').to.be.greaterThan(100)
    expect(seen.groups, 'plans with a direct group that has members').to.be.greaterThan(100)
    expect(seen.partial, 'passes that re-planned part of the Mappings').to.be.greaterThan(500)
    expect(seen.loadBalancers, 'plans programming a LoadBalancer Service').to.be.greaterThan(100)
  })

  it('one endpoint changed among 1,000 Mappings re-plans one Mapping, and a Mapping edited re-plans it and those contesting its endpoints', () => {
    const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}]}]}
    const options = {...DEFAULT_PLAN_OPTIONS, snat: true}
    const mappings: MappingResource[] = []
    const services: ServiceResource[] = []
    const slices: EndpointSliceResource[] = []
    for (let i = 0; i < 1000; i++) {
      mappings.push({metadata: {namespace: 'shop', name: `m${i}`, creationTimestamp: '2025-01-01T00:00:00Z'}, spec: {addresses: ['198.18.0.10'], serviceName: `s${i}`, ports: [{port: 1000 + i, servicePort: 80}]}})
      services.push({metadata: {namespace: 'shop', name: `s${i}`}, spec: {clusterIP: '198.19.0.1', ports: [{port: 80}]}})
      slices.push({metadata: {namespace: 'shop', name: `s${i}-1`, labels: {'kubernetes.io/service-name': `s${i}`}}, addressType: 'IPv4', endpoints: [{addresses: [`198.19.${i >> 8}.${i & 255}`]}]})
    }
    const memo = new PlanMemo()
    const first = plan({mappings, services, endpointSlices: slices}, host, options, memo)
    expect(memo.replanned).to.equal(1000)
    const moved = slices.map((s, i) => (i === 500 ? {...s, endpoints: [{addresses: ['198.19.250.1']}]} : s))
    const second = plan({mappings, services, endpointSlices: moved}, host, options, memo)
    expect(memo.replanned, 'Mappings programmed again').to.equal(1)
    expect(second.model.mappings.filter((m, i) => m !== first.model.mappings[i]).map((m) => m.name)).to.deep.equal(['m500'])
    // m7 takes m8's port: it is older by name at the same age, so m8 loses it.
    const edited = mappings.map((m, i) => (i === 7 ? {...m, spec: {...m.spec!, ports: [{port: 1008, servicePort: 80}]}} : m))
    const third = plan({mappings: edited, services, endpointSlices: moved}, host, options, memo)
    expect(memo.replanned, 'the edited Mapping and the one it contests').to.equal(2)
    expect(third.verdicts.find((v) => v.name === 'm8')?.invalid).to.equal('tcp/1008 on 198.18.0.10 is already mapped by shop/m7')
    expect(JSON.stringify(third)).to.equal(JSON.stringify(plan({mappings: edited, services, endpointSlices: moved}, host, options)))
  })

  it('one EndpointSlice changed reads the slices of its Service alone: the same work at 1,000 and at 10,000 Mappings', function () {
    this.timeout(60_000)
    // Without egress, which groups again the pods of every Mapping on the changed Mapping's address.
    const options = {...BENCH_PLAN_OPTIONS, snat: false}
    const workAt = (count: number) => {
      const {host, addresses} = syntheticHost()
      const memo = new PlanMemo()
      const snapshot = syntheticSnapshot(count, addresses)
      plan(snapshot, host, options, memo)
      const changed = withSlice(snapshot, count - 1, [syntheticPods(count - 1)[0]])
      const {work, result} = countWork(() => plan(changed, host, options, memo))
      expect(memo.replanned).to.equal(1)
      expect(JSON.stringify(result)).to.equal(JSON.stringify(plan(changed, host, options)))
      return work
    }
    const [small, large] = [workAt(1_000), workAt(10_000)]
    expect(large, `work at 10,000: ${large}, at 1,000: ${small}`).to.equal(small)
  })

  describe('changes that reach further than the changed object', () => {
    const host = HOSTS[0]!
    const options = {...DEFAULT_PLAN_OPTIONS, snat: true}
    const web = (namespace: string) => serviceOf({namespace, name: 'web', vip: 1, affinity: false})
    const at = (name: string, created: number, address: string, ports: number[], service = 'web'): MappingResource => ({
      metadata: {namespace: 'shop', name, creationTimestamp: `2025-01-0${created}T00:00:00Z`},
      spec: {addresses: [address], serviceName: service, ports: ports.map((port) => ({port, servicePort: 80}))},
    })
    const pods = (service: string, ...ips: string[]): EndpointSliceResource => ({
      metadata: {namespace: 'shop', name: `${service}-1`, labels: {'kubernetes.io/service-name': service}},
      addressType: 'IPv4',
      endpoints: ips.map((ip) => ({addresses: [ip]})),
    })
    const check = (memo: PlanMemo, snapshot: Snapshot) => {
      const kept = plan(snapshot, host, options, memo)
      expect(JSON.stringify(kept)).to.equal(JSON.stringify(plan(snapshot, host, options)))
      return kept
    }

    it('a Mapping deleted in the same pass as its Service changes stays gone when the Service changes again', () => {
      const a = at('a', 1, '198.18.0.10', [80])
      const memo = new PlanMemo()
      check(memo, {mappings: [a], services: [web('shop')], endpointSlices: [pods('web', '198.19.200.1')]})
      check(memo, {mappings: [], services: [], endpointSlices: [pods('web', '198.19.200.1')]})
      const back = check(memo, {mappings: [], services: [web('shop')], endpointSlices: [pods('web', '198.19.200.2')]})
      expect(back.verdicts).to.deep.equal([])
    })

    it('an older Mapping taking an endpoint frees the one its loser held for a younger Mapping', () => {
      const b = at('b', 2, '198.18.0.10', [80, 81])
      const c = at('c', 3, '198.18.0.10', [81])
      const services = [web('shop')]
      const memo = new PlanMemo()
      const before = check(memo, {mappings: [b, c], services, endpointSlices: []})
      expect(before.verdicts.map((v) => v.invalid)).to.deep.equal(['no', 'tcp/81 on 198.18.0.10 is already mapped by shop/b'])
      const after = check(memo, {mappings: [b, c, at('a', 1, '198.18.0.10', [80])], services, endpointSlices: []})
      expect(memo.replanned, 'a, b and c').to.equal(3)
      expect(after.verdicts.map((v) => v.invalid)).to.deep.equal(['no', 'tcp/80 on 198.18.0.10 is already mapped by shop/a', 'no'])
    })

    it('a pod IP left by its oldest Mapping leaves with the address of the next one listing it', () => {
      const x = at('x', 1, '198.18.0.10', [80], 'one')
      const y = at('y', 2, '198.18.1.20', [80], 'two')
      const services = ['one', 'two'].map((name) => serviceOf({namespace: 'shop', name, vip: 2, affinity: false}))
      const slices = [pods('one', '198.19.200.1'), pods('two', '198.19.200.1', '198.19.200.2')]
      const memo = new PlanMemo()
      const before = check(memo, {mappings: [x, y], services, endpointSlices: slices})
      expect(before.model.egress.map((e) => [e.address, e.podIPs])).to.deep.equal([['198.18.0.10', ['198.19.200.1']], ['198.18.1.20', ['198.19.200.2']]])
      const after = check(memo, {mappings: [y], services, endpointSlices: slices})
      expect(after.model.egress.map((e) => [e.address, e.podIPs])).to.deep.equal([['198.18.1.20', ['198.19.200.1', '198.19.200.2']]])
      const back = check(memo, {mappings: [y, x], services, endpointSlices: slices})
      expect(back.model.egress).to.deep.equal(before.model.egress)
    })
  })
})
