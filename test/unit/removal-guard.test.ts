import {expect} from 'chai'

import type {ApplyOptions, Backend} from '../../src/lib/backend/backend.js'
import {UNINSPECTED} from '../support/uninspected.js'
import {createBackend} from '../../src/lib/backend/registry.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {DEFAULT_PLAN_OPTIONS, type NatMapping, type NatModel} from '../../src/lib/plan/model.js'
import {
  DEFAULT_REMOVAL_POLICY,
  isMassRemoval,
  MassRemovalError,
  measureRemoval,
  oneShotGuard,
  parseShare,
  RemovalHold,
  type Removal,
} from '../../src/lib/sync/guard.js'
import {syncOnce} from '../../src/lib/sync/once.js'
import {sampleModel} from './nat-model-fixture.js'

const names = (count: number, from = 1) => Array.from({length: count}, (_, i) => `default/m-${String(from + i).padStart(3, '0')}`)

describe('mass-removal guard: the decision', () => {
  const table: {desc: string; programmed: string[]; next: string[]; maxShare?: number; removed: number; held: boolean}[] = [
    {desc: 'nothing programmed yet: a first sync adds', programmed: [], next: names(40), removed: 0, held: false},
    {desc: '9 of 9 removed: below the floor of 10', programmed: names(9), next: [], removed: 9, held: false},
    {desc: '10 of 10 removed: at the floor and all of them', programmed: names(10), next: [], removed: 10, held: true},
    {desc: '10 of 20 removed: exactly 50% is not more than 50%', programmed: names(20), next: names(10, 11), removed: 10, held: false},
    {desc: '11 of 20 removed: more than 50%', programmed: names(20), next: names(9, 12), removed: 11, held: true},
    {desc: '17 of 20 removed: a file cut to its first 3 Mappings', programmed: names(20), next: names(3), removed: 17, held: true},
    {desc: '20 of 20 removed: an empty API list', programmed: names(20), next: [], removed: 20, held: true},
    {desc: '60 of 200 removed: 30%', programmed: names(200), next: names(140, 61), removed: 60, held: false},
    {desc: 'new Mappings do not offset removed ones', programmed: names(20), next: [...names(3), ...names(30, 100)], removed: 17, held: true},
    {desc: 'renamed Mappings count as removed', programmed: names(12), next: names(12, 50), removed: 12, held: true},
    {desc: 'with 0%, any removal of 10 or more is held', programmed: names(1000), next: names(990, 11), maxShare: 0, removed: 10, held: true},
    {desc: 'with 0%, 9 removed still pass', programmed: names(1000), next: names(991, 10), maxShare: 0, removed: 9, held: false},
    {desc: 'with 100%, even removing everything passes', programmed: names(20), next: [], maxShare: 1, removed: 20, held: false},
  ]
  for (const c of table) {
    it(c.desc, () => {
      const removal = measureRemoval(new Set(c.programmed), new Set(c.next))
      expect(removal.programmed).to.equal(c.programmed.length)
      expect(removal.removed).to.have.length(c.removed)
      expect(isMassRemoval(removal, {maxShare: c.maxShare ?? DEFAULT_REMOVAL_POLICY.maxShare})).to.equal(c.held)
    })
  }

  it('names the removed Mappings, sorted', () => {
    expect(measureRemoval(new Set(['b/x', 'a/y', 'a/x']), new Set(['a/y'])).removed).to.deep.equal(['a/x', 'b/x'])
  })

  it('says what it held, with the counts and the limit', () => {
    const error = new MassRemovalError(measureRemoval(new Set(names(20)), new Set(names(3))), DEFAULT_REMOVAL_POLICY)
    expect(error.message).to.equal(
      'mass removal held: this sync would remove 17 of the 20 Mappings programmed here (default/m-004, default/m-005, default/m-006, default/m-007, default/m-008 and 12 more), more than --max-removal 50% and at least 10; the kernel was left as it is',
    )
  })
})

describe('mass-removal guard: --max-removal values', () => {
  const accepted: [string, number][] = [['50%', 0.5], ['0%', 0], ['100%', 1], ['12.5%', 0.125], [' 30 % ', 0.3]]
  for (const [text, share] of accepted) it(`accepts ${JSON.stringify(text)}`, () => expect(parseShare(text)).to.equal(share))
  for (const text of ['0.5', '50', '150%', '-1%', 'half', '', '50%%']) {
    it(`refuses ${JSON.stringify(text)}`, () => expect(() => parseShare(text)).to.throw(`"${text}" must be a percentage from 0% to 100%, such as 50%`))
  }
})

describe('mass-removal guard: a daemon holds the same removal for its delay', () => {
  const removal = (kept: number): Removal => measureRemoval(new Set(names(20)), new Set(names(kept)))
  let now: number
  let hold: RemovalHold
  beforeEach(() => {
    now = 1000
    hold = new RemovalHold(DEFAULT_REMOVAL_POLICY, 120_000, {now: () => now})
  })

  it('does not allow a removal it never held', () => {
    expect(hold.allows(removal(3))).to.equal(false)
  })

  it('allows the same removal once it has been held for the delay, not a moment before', () => {
    expect(hold.hold(removal(3))).to.include({since: 1000, until: 121_000, first: true})
    now = 120_999
    expect(hold.allows(removal(3))).to.equal(false)
    expect(hold.hold(removal(3)).first).to.equal(false)
    now = 121_000
    expect(hold.allows(removal(3))).to.equal(true)
  })

  it('starts the wait again when other Mappings are about to go', () => {
    hold.hold(removal(3))
    now = 60_000
    expect(hold.hold(removal(5))).to.include({since: 60_000, until: 180_000, first: true})
    now = 130_000
    expect(hold.allows(removal(5))).to.equal(false)
    expect(hold.allows(removal(3))).to.equal(false)
  })

  it('forgets the hold once a pass applied', () => {
    hold.hold(removal(3))
    now = 200_000
    expect(hold.release()).to.deep.include({since: 1000, until: 121_000})
    expect(hold.held()).to.equal(undefined)
    expect(hold.allows(removal(3))).to.equal(false)
  })
})

describe('mass-removal guard in a sync pass', () => {
  /** A backend whose state is the list of Mappings it programs; the kernel holds `kernel`. */
  function listBackend(kernel: string[], desired: string[]): {backend: Backend; applied: {desired: unknown; options: ApplyOptions | undefined}[]} {
    const applied: {desired: unknown; options: ApplyOptions | undefined}[] = []
    const backend: Backend = {
      name: 'iptables',
      tools: [],
      render: () => desired,
      apply: async (state, options) => {
        applied.push({desired: state, options})
        return {changed: true, written: {sets: 0, chains: 0, rules: 1, routes: 0}, changedEndpoints: []}
      },
      read: async () => kernel,
      flush: async () => ({dryRun: true, changed: false, removed: {jumps: [], chains: [], sets: [], ipRules: [], routes: []}}),
      forward: async () => ({written: 0, drops: []}),
      inspect: UNINSPECTED,
      payloads: () => [],
      ruleCount: () => 0,
      programmedMappings: (state) => new Set(state as string[]),
    }
    return {backend, applied}
  }

  const runner = new RecordingRunner((call) => (call.command === 'ip' ? {stdout: '[]'} : {stdout: '2\n'}))
  const settings = {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth/}
  const load = async () => ({mappings: [], services: [], endpointSlices: []})
  const run = (backend: Backend, options: Parameters<typeof syncOnce>[3]) => syncOnce({runner, backend}, load, settings, {checkPrerequisites: false, ...options})

  it('refuses a pass that would remove 17 of the 20 Mappings the kernel programs, and applies nothing', async () => {
    const {backend, applied} = listBackend(names(20), names(3))
    const error = await run(backend, {removalGuard: oneShotGuard(DEFAULT_REMOVAL_POLICY, false)}).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).to.be.instanceOf(MassRemovalError)
    expect((error as MassRemovalError).removal).to.deep.equal({programmed: 20, removed: names(17, 4)})
    expect(applied).to.deep.equal([])
  })

  it('measures against the state it trusts, not the kernel, when it has one', async () => {
    const {backend, applied} = listBackend([], names(3))
    const error = await run(backend, {assumeActual: names(20), removalGuard: oneShotGuard(DEFAULT_REMOVAL_POLICY, false)}).catch((e: unknown) => e)
    expect(error).to.be.instanceOf(MassRemovalError)
    expect(applied).to.deep.equal([])
  })

  it('applies it when the guard allows, and says so in the report', async () => {
    const {backend, applied} = listBackend(names(20), names(3))
    const report = await run(backend, {removalGuard: oneShotGuard(DEFAULT_REMOVAL_POLICY, true)})
    expect(applied.map((a) => a.desired)).to.deep.equal([names(3)])
    expect(report.massRemoval).to.deep.equal({programmed: 20, removed: names(17, 4)})
  })

  it('applies a smaller removal and reports no mass removal', async () => {
    const {backend, applied} = listBackend(names(20), names(12))
    const report = await run(backend, {removalGuard: oneShotGuard(DEFAULT_REMOVAL_POLICY, false)})
    expect(applied).to.have.length(1)
    expect(report.massRemoval).to.equal(undefined)
  })

  it('counts the Mappings of a trusted state once: it was the state the pass before applied', async () => {
    const {backend} = listBackend(names(20), names(20))
    const counted: unknown[] = []
    const counting: Backend = {...backend, render: () => [...names(20)], programmedMappings: (state) => (counted.push(state), new Set(state as string[]))}
    const guard = oneShotGuard(DEFAULT_REMOVAL_POLICY, false)
    const first = await run(counting, {removalGuard: guard})
    expect(counted).to.have.length(2)
    await run(counting, {assumeActual: first.kernelState, removalGuard: guard})
    expect(counted, 'only the new desired state').to.have.length(3)
  })

  it('leaves a failed kernel read to the apply, which reports it', async () => {
    const {backend} = listBackend(names(20), [])
    const failing: Backend = {...backend, read: () => Promise.reject(new Error('iptables-save failed')), apply: (_desired, options) => options!.kernelRead!.then(() => {
      throw new Error('unreachable')
    })}
    const error = await run(failing, {removalGuard: oneShotGuard(DEFAULT_REMOVAL_POLICY, false)}).catch((e: unknown) => e)
    expect(error).to.be.an('error').with.property('message', 'iptables-save failed')
  })
})

describe('mass-removal guard: the Mappings a backend state programs', () => {
  const runner = new RecordingRunner(() => ({stdout: ''}))
  const longName = 'n'.repeat(253)
  const withLongName = (model: NatModel): NatModel => {
    const web = model.mappings[0]!
    const long: NatMapping = {...web, name: longName, endpoints: web.endpoints.map((e) => ({...e, port: e.port + 1000}))}
    return {...model, mappings: [...model.mappings, long]}
  }

  for (const name of ['iptables', 'nftables'] as const) {
    it(`${name}: every Mapping with an endpoint, long names cut as the comments cut them`, () => {
      const backend = createBackend(name, runner)
      const model = withLongName(sampleModel())
      const programmed = [...backend.programmedMappings(backend.render(model))].sort()
      const expected = model.mappings.filter((m) => m.endpoints.length > 0).map((m) => `${m.namespace}/${m.name}`)
      // The long name is cut the same way in every rule, so it still counts as one Mapping.
      expect(programmed).to.have.length(new Set(expected).size)
      for (const id of expected.filter((id) => !id.includes(longName))) expect(programmed).to.include(id)
      expect(programmed.filter((id) => id.startsWith(`default/${'n'.repeat(50)}`))).to.have.length(1)
    })

    it(`${name}: none in an empty state`, () => {
      const backend = createBackend(name, runner)
      expect([...backend.programmedMappings(backend.render({mappings: [], interfaces: [], egress: [], masquerade: true}))]).to.deep.equal([])
    })
  }
})
