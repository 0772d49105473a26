import {expect} from 'chai'
import type {MappingResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {resolve, resolveSteps} from '../../src/lib/sync/resolve.js'
import type {SyncSettings} from '../../src/lib/sync/settings.js'

const settings: SyncSettings = {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth1$/}
const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}]}]}
const web: MappingResource = {
  apiVersion: 'smartnat.aureacentral.com/v1alpha1',
  kind: 'Mapping',
  metadata: {name: 'web', namespace: 'default'},
  spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]},
}
const snapshot: Snapshot = {
  mappings: [web],
  services: [{metadata: {name: 'web', namespace: 'default'}, spec: {clusterIP: '198.19.100.10', ports: [{port: 80}]}}],
  endpointSlices: [],
}

/** A read that settles only when the test says so, and says when it was started. */
function gated<T>(): {read: () => Promise<T>; started: boolean; settle(value: T | Error): void} {
  let settle: (value: T | Error) => void = () => {}
  const gate = {
    started: false,
    read: () => {
      gate.started = true
      return new Promise<T>((ok, fail) => (settle = (value) => (value instanceof Error ? fail(value) : ok(value))))
    },
    settle: (value: T | Error) => settle(value),
  }
  return gate
}

describe('resolve', () => {
  it('plans the snapshot for the host it read', async () => {
    const resolved = await resolve({loadSnapshot: async () => snapshot, readHost: async () => host}, settings)
    expect(resolved.snapshot).to.equal(snapshot)
    expect(resolved.host).to.equal(host)
    expect(resolved.plan.verdicts.map((v) => [v.name, Object.keys(v.configuredAddresses)])).to.deep.equal([['web', ['198.18.0.10']]])
  })

  it('reads the host while the source is still being read', async () => {
    const source = gated<Snapshot>()
    const machine = gated<HostInfo>()
    const resolving = resolve({loadSnapshot: source.read, readHost: machine.read}, settings)
    expect([source.started, machine.started]).to.deep.equal([true, true])
    source.settle(snapshot)
    machine.settle(host)
    expect((await resolving).plan.verdicts).to.have.length(1)
  })

  it('reports the source’s error when both reads fail, even when the host’s failed first', async () => {
    const source = gated<Snapshot>()
    const machine = gated<HostInfo>()
    const resolving = resolve({loadSnapshot: source.read, readHost: machine.read}, settings)
    machine.settle(new Error('ip -j address show failed'))
    await new Promise((next) => setImmediate(next))
    source.settle(new Error('manifests: no such file'))
    const error = await resolving.catch((e: Error) => e)
    expect((error as Error).message).to.equal('manifests: no such file')
  })

  it('reports the host’s error when only the host cannot be read', async () => {
    const error = await resolve({loadSnapshot: async () => snapshot, readHost: async () => Promise.reject(new Error('ip failed'))}, settings).catch((e: Error) => e)
    expect((error as Error).message).to.equal('ip failed')
  })
})

describe('resolveSteps', () => {
  it('reads the source, then the host, then plans, calling beforePlan just before planning', async () => {
    const calls: string[] = []
    const {steps, resolved} = resolveSteps(
      {
        loadSnapshot: async () => (calls.push('source'), snapshot),
        readHost: async () => (calls.push('host'), host),
      },
      settings,
      {beforePlan: () => void calls.push('before plan')},
    )
    expect(steps.map((s) => s.title)).to.deep.equal(['Read Mappings, Services and EndpointSlices', 'Read external interfaces', 'Plan'])
    for (const step of steps) await step.run()
    expect(calls).to.deep.equal(['source', 'host', 'before plan'])
    expect(resolved().plan.verdicts.map((v) => v.name)).to.deep.equal(['web'])
  })
})
