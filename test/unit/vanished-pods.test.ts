import {expect} from 'chai'
import fc from 'fast-check'
import type {MappingResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {PlanMemo} from '../../src/lib/plan/memo.js'
import type {HostInfo, MappingVerdict, Plan, Snapshot} from '../../src/lib/plan/model.js'
import {VanishedPodsLedger, vanishedPods} from '../../src/lib/sync/vanished-pods.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticPods, syntheticSnapshot, withSlice} from '../../bench/synthetic.js'
import {heldEntries} from '../support/held.js'
import {countWork} from '../support/work-counter.js'

const ADDRESSES = ['198.18.0.10', '198.18.0.11', '198.18.9.9']
const PODS = ['198.19.200.1', '198.19.200.2', '198.19.200.3', '198.19.200.10', '198.19.200.100'] as Ipv4[]
const SLOTS = 5

const configuredArb = fc
  .array(fc.tuple(fc.constantFrom(...ADDRESSES), fc.subarray([...PODS, 'not-an-ip'])), {maxLength: 2})
  .map((entries) => Object.fromEntries(entries.map(([address, podIPs]) => [address, {podIPs}])))
const stepArb = fc.record({
  statuses: fc.array(fc.tuple(fc.nat(SLOTS - 1), fc.option(configuredArb, {nil: undefined})), {maxLength: 3}),
  verdicts: fc.array(fc.tuple(fc.nat(SLOTS - 1), configuredArb), {maxLength: 3}),
  removed: fc.option(fc.nat(SLOTS - 1), {nil: undefined}),
  own: fc.option(fc.subarray(ADDRESSES), {nil: undefined}),
  listed: fc.option(fc.subarray(PODS), {nil: undefined}),
  remembered: fc.subarray(PODS, {maxLength: 2}),
  listedBefore: fc.subarray(PODS, {maxLength: 2}),
})

function mappingAt(slot: number, configured: Record<string, {podIPs: string[]}> | undefined): MappingResource {
  return {apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', metadata: {namespace: 'default', name: `m${slot}`}, ...(configured ? {status: {configuredAddresses: configured}} : {})}
}

function verdictAt(slot: number, configured: Record<string, {podIPs: string[]}>): MappingVerdict {
  const served = Object.fromEntries(Object.entries(configured).map(([address, {podIPs}]) => [address, {podIPs: podIPs.filter((ip) => ip !== 'not-an-ip') as Ipv4[]}]))
  return {namespace: 'default', name: `m${slot}`, valid: true, invalid: 'no', configuredAddresses: served, notLocalAddresses: []}
}

function hostWith(own: readonly string[]): HostInfo {
  return {interfaces: [{name: 'eth1', addresses: own.map((address) => ({address: address as Ipv4, prefixLength: 24}))}]}
}

function planOf(verdicts: MappingVerdict[]): Plan {
  return {model: {mappings: [], interfaces: [], egress: [], masquerade: true}, verdicts, interfaceFaults: []}
}

/** Mapping `index`'s statuses as a writeback leaves them: the pods its verdict configured. */
function written(snapshot: Snapshot, planned: Plan): Snapshot {
  const byName = new Map(planned.verdicts.map((v) => [`${v.namespace}/${v.name}`, v]))
  const mappings = snapshot.mappings.map((m) => ({...m, status: {configuredAddresses: byName.get(`${m.metadata.namespace}/${m.metadata.name}`)!.configuredAddresses}}))
  return {...snapshot, mappings}
}

describe('VanishedPodsLedger', () => {
  it('finds what vanishedPods finds over random sequences of changed statuses, verdicts, host addresses and listings', () => {
    fc.assert(
      fc.property(fc.array(stepArb, {minLength: 1, maxLength: 12}), (steps) => {
        const ledger = new VanishedPodsLedger()
        const mappings = new Map<number, MappingResource>()
        const verdicts = new Map<number, MappingVerdict>()
        let own: readonly string[] = ADDRESSES.slice(0, 2)
        let listed: Ipv4[] = []
        for (const step of steps) {
          // Unchanged objects stay the same objects, as a source and a kept plan hand them over.
          for (const [slot, configured] of step.statuses) mappings.set(slot, mappingAt(slot, configured))
          for (const [slot, configured] of step.verdicts) verdicts.set(slot, verdictAt(slot, configured))
          if (step.removed !== undefined) {
            mappings.delete(step.removed)
            verdicts.delete(step.removed)
          }
          if (step.own) own = step.own
          if (step.listed) listed = step.listed
          const sorted = <T>(m: Map<number, T>) => [...m].sort(([a], [b]) => a - b).map(([, v]) => v)
          const snapshot: Snapshot = {mappings: sorted(mappings), services: [], endpointSlices: []}
          const planned = planOf(sorted(verdicts))
          const listing = {byMapping: new Map(), all: listed}
          const args = [snapshot, planned, hostWith(own), step.remembered, listing, step.listedBefore] as const
          expect(ledger.vanished(...args)).to.deep.equal(vanishedPods(...args))
        }
      }),
      {numRuns: 300},
    )
  })

  it('keeps one count per pod, however many statuses name it and verdicts serve it', () => {
    const {host, addresses} = syntheticHost()
    const memo = new PlanMemo()
    const base = syntheticSnapshot(100, addresses)
    const snapshot = written(base, memo.plan(base, host, BENCH_PLAN_OPTIONS))
    const ledger = new VanishedPodsLedger()
    expect(ledger.vanished(snapshot, memo.plan(snapshot, host, BENCH_PLAN_OPTIONS), host)).to.deep.equal([])
    // Every pod is named by a status and served by a verdict: one entry each, and the host's own addresses.
    const pods = new Set(base.mappings.flatMap((_, i) => syntheticPods(i)))
    expect(pods.size).to.equal(200)
    expect(heldEntries(ledger)).to.equal(pods.size + addresses.length)
  })

  describe('a pass after one pod left, at 1,000 and at 10,000 Mappings', function () {
    this.timeout(120_000)

    /** The ledger after a pass over `count` synthetic Mappings with their statuses written, then what it does for one pod leaving the last one. */
    function afterOneChange(count: number): {work: number; visited: number; found: Ipv4[]; whole: Ipv4[]} {
      const {host, addresses} = syntheticHost()
      const memo = new PlanMemo()
      const base = syntheticSnapshot(count, addresses)
      const snapshot = written(base, memo.plan(base, host, BENCH_PLAN_OPTIONS))
      const ledger = new VanishedPodsLedger()
      expect(ledger.vanished(snapshot, memo.plan(snapshot, host, BENCH_PLAN_OPTIONS), host)).to.deep.equal([])
      const last = count - 1
      const changed = withSlice(snapshot, last, [syntheticPods(last)[0]])
      const planned = memo.plan(changed, host, BENCH_PLAN_OPTIONS)
      const {result: found, work} = countWork(() => ledger.vanished(changed, planned, host))
      return {work, visited: ledger.visited, found, whole: vanishedPods(changed, planned, host)}
    }

    it('looks at the changed verdict alone, whatever the number of Mappings', () => {
      const small = afterOneChange(1_000)
      const large = afterOneChange(10_000)
      expect(small.found).to.deep.equal(small.whole).and.to.have.length(1)
      expect(large.found).to.deep.equal(large.whole).and.to.deep.equal([syntheticPods(9_999)[1]])
      // The verdict that changed, out and in: two objects looked at.
      expect([small.visited, large.visited]).to.deep.equal([2, 2])
      expect(large.work, `work at 10,000: ${large.work}, at 1,000: ${small.work}`).to.equal(small.work)
    })
  })
})
