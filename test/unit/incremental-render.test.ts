/**
 * A backend renders a daemon's models one after the other, reusing what did not change (the planner
 * keeps unchanged NatMapping and NatEgress objects): whatever the sequence of changes, the state is
 * the one a fresh render gives, and the writes of an apply against the last state are those of a
 * full diff. One changed Mapping renders that Mapping and assembles its address, nothing else.
 */
import {expect} from 'chai'
import fc from 'fast-check'
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'
import type {Backend, BackendOptions} from '../../src/lib/backend/backend.js'
import {iptablesBackend} from '../../src/lib/backend/iptables/backend.js'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import {IptablesRenderer} from '../../src/lib/backend/iptables/renderer.js'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {NftablesRenderer} from '../../src/lib/backend/nftables/renderer.js'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL} from '../../src/lib/mapping/types.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type NatModel, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {reusing} from '../support/model-reuse.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {ip} from './nat-model-fixture.js'

const ADDRESSES = ['198.18.0.10', '198.18.0.11', '198.18.1.10', '198.18.1.11']
const PORTS = [
  {port: 80, protocol: 'tcp'},
  {port: 443, protocol: 'tcp'},
  {port: 53, protocol: 'udp'},
] as const
const SOURCES = ['0.0.0.0/0', '198.18.5.0/24', '198.18.6.7', '198.18.5.128/25']
const PODS = ['198.19.0.1', '198.19.0.2', '198.19.0.3', '198.19.0.4', '198.19.0.5']

interface MappingSpec {
  addresses: number[]
  ports: number[]
  sources: number[]
  direct: boolean
}

interface ServiceSpec {
  pods: number[]
  /** Pods listed but not ready (serving and terminating). */
  terminating: number[]
  affinity?: number
}

/** What the cluster and host hold, as small numbers a test changes one at a time. */
interface World {
  mappings: (MappingSpec | undefined)[]
  services: ServiceSpec[]
  /** Which host addresses are up. */
  host: number[]
  snat: boolean
  masquerade: boolean
}

const mappingSpec: fc.Arbitrary<MappingSpec> = fc.record({
  addresses: fc.uniqueArray(fc.nat(ADDRESSES.length - 1), {minLength: 1, maxLength: 2}),
  ports: fc.uniqueArray(fc.nat(PORTS.length - 1), {minLength: 1, maxLength: 3}),
  sources: fc.uniqueArray(fc.nat(SOURCES.length - 1), {maxLength: 3}),
  direct: fc.boolean(),
})
const serviceSpec: fc.Arbitrary<ServiceSpec> = fc.record(
  {
    pods: fc.uniqueArray(fc.nat(PODS.length - 1), {maxLength: 3}),
    terminating: fc.uniqueArray(fc.nat(PODS.length - 1), {maxLength: 1}),
    affinity: fc.constantFrom(60, 600),
  },
  {requiredKeys: ['pods', 'terminating']},
)

type Change = (world: World) => World

const changes: fc.Arbitrary<Change> = fc.oneof(
  mappingSpec.chain((spec) => fc.nat(7).map((i): Change => (w) => ({...w, mappings: w.mappings.map((m, k) => (k === i ? spec : m))}))),
  fc.nat(7).map((i): Change => (w) => ({...w, mappings: w.mappings.map((m, k) => (k === i ? undefined : m))})),
  serviceSpec.chain((spec) => fc.nat(7).map((i): Change => (w) => ({...w, services: w.services.map((s, k) => (k === i ? spec : s))}))),
  fc.uniqueArray(fc.nat(ADDRESSES.length - 1), {minLength: 1, maxLength: 4}).map((host): Change => (w) => ({...w, host})),
  fc.constant<Change>((w) => ({...w, snat: !w.snat})),
  fc.constant<Change>((w) => ({...w, masquerade: !w.masquerade})),
)

const worlds: fc.Arbitrary<World> = fc.record({
  mappings: fc.array(fc.option(mappingSpec, {nil: undefined}), {minLength: 8, maxLength: 8}),
  services: fc.array(serviceSpec, {minLength: 8, maxLength: 8}),
  host: fc.constant([0, 1, 2, 3]),
  snat: fc.boolean(),
  masquerade: fc.boolean(),
})

function snapshotOf(world: World): Snapshot {
  const snapshot: Snapshot = {mappings: [], services: [], endpointSlices: []}
  world.mappings.forEach((spec, i) => {
    if (!spec) return
    snapshot.mappings.push({
      apiVersion: MAPPING_API_VERSION,
      kind: 'Mapping',
      metadata: {namespace: 'default', name: `m${i}`, creationTimestamp: `2024-01-0${1 + i}T00:00:00Z`},
      spec: {
        addresses: spec.addresses.map((a) => ADDRESSES[a]!),
        allowedSources: spec.sources.map((s) => SOURCES[s]!),
        serviceName: `s${i}`,
        mode: spec.direct ? 'direct' : 'service',
        ports: spec.ports.map((p) => ({port: PORTS[p]!.port, protocol: PORTS[p]!.protocol})),
      },
    })
  })
  world.services.forEach((spec, i) => {
    const ports = PORTS.map((p) => ({name: `${p.protocol}-${p.port}`, port: p.port, protocol: p.protocol.toUpperCase(), targetPort: 8080 + p.port}))
    snapshot.services.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {namespace: 'default', name: `s${i}`},
      spec: {
        type: 'ClusterIP',
        clusterIP: `198.19.1.${1 + i}`,
        ports,
        ...(spec.affinity === undefined ? {} : {sessionAffinity: 'ClientIP', sessionAffinityConfig: {clientIP: {timeoutSeconds: spec.affinity}}}),
      },
    })
    const ready = spec.pods.map((p) => ({addresses: [PODS[p]!], conditions: {ready: true}}))
    const leaving = spec.terminating.filter((p) => !spec.pods.includes(p)).map((p) => ({addresses: [PODS[p]!], conditions: {ready: false, serving: true, terminating: true}}))
    snapshot.endpointSlices.push({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {namespace: 'default', name: `s${i}-abc`, labels: {[SERVICE_NAME_LABEL]: `s${i}`}},
      addressType: 'IPv4',
      ports: ports.map((p) => ({name: p.name, port: p.targetPort, protocol: p.protocol})),
      endpoints: [...ready, ...leaving],
    })
  })
  return snapshot
}

function hostOf(world: World): HostInfo {
  const up = (first: number) => [first, first + 1].filter((a) => world.host.includes(a)).map((a) => ({address: ip(ADDRESSES[a]!), prefixLength: 24}))
  return {
    interfaces: [
      {name: 'eth1', addresses: up(0)},
      {name: 'eth2', addresses: up(2)},
    ].filter((iface) => iface.addresses.length > 0),
  }
}

function modelOf(world: World): NatModel {
  return plan(snapshotOf(world), hostOf(world), {...DEFAULT_PLAN_OPTIONS, snat: world.snat, masquerade: world.masquerade}).model
}

/** A copy of a state that the renderer knows nothing about: diffs and summaries read it whole. */
function unknown<State>(state: State): State {
  return structuredClone(state)
}

interface Case<State> {
  name: string
  backend: (runner: RecordingRunner, options?: BackendOptions) => Backend<State>
  fresh: (model: NatModel) => State
}

const CASES: Case<unknown>[] = [
  {name: 'iptables', backend: iptablesBackend as Case<unknown>['backend'], fresh: renderIptables},
  {name: 'nftables', backend: nftablesBackend as Case<unknown>['backend'], fresh: renderNftables},
]
/** A one-shot command's backend, and a daemon's, which keeps parts from its first render on. */
const RENDERS_AGAIN = [false, true]

/** What an apply wrote and reported. */
async function applied<State>(backend: Backend<State>, runner: RecordingRunner, desired: State, actual: State): Promise<unknown> {
  runner.calls.length = 0
  const result = await backend.apply(desired, {assumeActual: actual})
  return {result, calls: runner.calls.map((c) => ({command: c.command, input: c.input}))}
}

describe('rendering and applying a sequence of models', () => {
  for (const {name, backend, fresh} of CASES) for (const rendersAgain of RENDERS_AGAIN) {
    it(`${name}${rendersAgain ? ', rendering again' : ''}: renders each model as a fresh render does and writes what a full diff writes`, async function () {
      this.timeout(120_000)
      await fc.assert(
        fc.asyncProperty(worlds, fc.array(changes, {minLength: 1, maxLength: 8}), async (start, steps) => {
          const runner = new RecordingRunner()
          const incremental = backend(runner, {rendersAgain})
          const referenceRunner = new RecordingRunner()
          const reference = backend(referenceRunner)
          let world = start
          let model = modelOf(world)
          let state = incremental.render(model)
          expect(state).to.deep.equal(fresh(model))
          for (const step of steps) {
            world = step(world)
            model = reusing(model, modelOf(world))
            const before = unknown(state)
            const desired = incremental.render(model)
            expect(desired).to.deep.equal(fresh(model))
            // A daemon's read compares the kernel with the last state and may hand back its sets and lists: the next render leaves it as it was.
            expect(unknown(state)).to.deep.equal(before)
            expect(incremental.ruleCount(desired)).to.equal(reference.ruleCount(unknown(desired)))
            expect([...incremental.programmedMappings(desired)].sort()).to.deep.equal([...reference.programmedMappings(unknown(desired))].sort())
            const writes = await applied(incremental, runner, desired, state)
            expect(writes).to.deep.equal(await applied(reference, referenceRunner, unknown(desired), unknown(state)))
            state = desired
          }
        }),
        {numRuns: 60},
      )
    })
  }
})

/** Four Mappings, one per host address, half of them direct, each with a Service of three ready pods. */
const FOUR_MAPPINGS: World = {
  mappings: Array.from({length: 4}, (_, i) => ({addresses: [i], ports: [0, 2], sources: [1], direct: i % 2 === 0})),
  services: Array.from({length: 4}, () => ({pods: [0, 1, 2], terminating: []})),
  host: [0, 1, 2, 3],
  snat: true,
  masquerade: true,
}

describe('rendering a model in which one Mapping changed', () => {
  const world = FOUR_MAPPINGS
  const changed: World = {...world, services: world.services.map((s, i) => (i === 2 ? {...s, pods: [0, 1, 3]} : s))}

  for (const renderer of [new IptablesRenderer(), new NftablesRenderer()]) {
    it(`${renderer.constructor.name}: renders that Mapping alone and assembles only its address`, () => {
      const first = modelOf(world)
      // A first render has no model to repeat: the full render, with no parts kept.
      renderer.render(first)
      expect(renderer.stats).to.deep.equal({whole: true, mappingsRendered: 0, addressesAssembled: 0})
      // A render that mostly repeats the last model builds the parts the next ones reuse.
      renderer.render(first)
      expect(renderer.stats).to.deep.equal({whole: false, mappingsRendered: 4, addressesAssembled: 4})
      const second = reusing(first, modelOf(changed))
      expect(second.mappings.filter((m, i) => m !== first.mappings[i]).map((m) => m.name)).to.deep.equal(['m2'])
      renderer.render(second)
      expect(renderer.stats).to.deep.equal({whole: false, mappingsRendered: 1, addressesAssembled: 1})
      // Back to the first model: its objects are still known, nothing is rendered, one address is assembled.
      renderer.render(first)
      expect(renderer.stats).to.deep.equal({whole: false, mappingsRendered: 0, addressesAssembled: 1})
    })
  }

  for (const make of [() => new IptablesRenderer({partsFromFirst: true}), () => new NftablesRenderer({partsFromFirst: true})]) {
    it(`${make().constructor.name} of a daemon: keeps parts from the first render, so the first change renders that Mapping alone`, () => {
      const renderer = make()
      const first = modelOf(world)
      renderer.render(first)
      expect(renderer.stats).to.deep.equal({whole: false, mappingsRendered: 4, addressesAssembled: 4})
      renderer.render(reusing(first, modelOf(changed)))
      expect(renderer.stats).to.deep.equal({whole: false, mappingsRendered: 1, addressesAssembled: 1})
    })
  }
})

describe('a backend rendering one model after another', () => {
  // The collector on demand, as `node --expose-gc` gives it.
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  const world = FOUR_MAPPINGS

  for (const {name, backend} of CASES) {
    it(`${name}: keeps only the last state it rendered, not every earlier one`, async () => {
      const runner = new RecordingRunner()
      const subject = backend(runner)
      let model = modelOf(world)
      let state = subject.render(model)
      const first = new WeakRef(state as object)
      for (let pass = 1; pass <= 4; pass++) {
        model = reusing(model, modelOf({...world, services: world.services.map((s, i) => (i === pass % 4 ? {...s, pods: [pass % 5]} : s))}))
        const desired = subject.render(model)
        await subject.apply(desired, {assumeActual: state})
        state = desired
      }
      // A WeakRef holds its object until the current job ends.
      await new Promise((resolve) => setImmediate(resolve))
      gc()
      expect(first.deref()).to.equal(undefined)
      expect(subject.ruleCount(state)).to.be.greaterThan(0)
    })
  }
})
