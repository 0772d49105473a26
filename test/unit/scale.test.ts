import {expect} from 'chai'
import type {Backend} from '../../src/lib/backend/backend.js'
import {iptablesBackend} from '../../src/lib/backend/iptables/backend.js'
import {diffIptablesState} from '../../src/lib/backend/iptables/diff.js'
import {MAX_CHAIN_NAME, MAX_SET_NAME, tempSetName} from '../../src/lib/backend/iptables/names.js'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import {setOptions} from '../../src/lib/backend/iptables/sets.js'
import type {IptablesState} from '../../src/lib/backend/iptables/types.js'
import {inspectHost, type Inspection} from '../../src/lib/inspect/inspection.js'
import {mappingFacts} from '../../src/lib/inspect/facts.js'
import {compileInterfacesPattern} from '../../src/lib/host/interfaces.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {plan} from '../../src/lib/plan/plan.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from '../../bench/synthetic.js'
import {workRatio} from '../support/work-counter.js'

// Work is counted, not timed: counting holds on a loaded machine, where timing ratios of 3x and
// more came from the load alone.

function planAndRender(count: number): () => IptablesState {
  const {host, addresses} = syntheticHost()
  const snapshot = syntheticSnapshot(count, addresses)
  return () => renderIptables(plan(snapshot, host, BENCH_PLAN_OPTIONS).model)
}

/** An inspection of `count` synthetic Mappings against a kernel that holds exactly their rules. */
async function inspectionOf(count: number): Promise<Inspection<IptablesState>> {
  const {host, addresses} = syntheticHost()
  const snapshot = syntheticSnapshot(count, addresses)
  const ipAddr = JSON.stringify(
    host.interfaces.map((i) => ({ifname: i.name, addr_info: i.addresses.map((a) => ({family: 'inet', local: a.address, prefixlen: a.prefixLength}))})),
  )
  const runner = new RecordingRunner((call) => (call.command === 'ip' ? {stdout: ipAddr} : new Error(`unexpected ${call.command}`)))
  const settings = {plan: BENCH_PLAN_OPTIONS, interfacesPattern: compileInterfacesPattern('^ext\\d+$')}
  const real = iptablesBackend(runner)
  const kernel = real.render(plan(snapshot, host, settings.plan).model)
  const backend: Backend<IptablesState> = {...real, read: async () => kernel, inspect: {...real.inspect, readCounted: async () => ({state: kernel, counters: new Map()})}}
  return inspectHost({runner, backend, loadSnapshot: async () => snapshot}, settings)
}

function maxelemOf(options: string): number {
  return Number(/maxelem (\d+)/.exec(options)?.[1])
}

describe('scale', function () {
  this.timeout(120_000)

  it('plans and renders 20,000 Mappings with less than 2.5 times the work of 10,000', () => {
    const ratio = workRatio(planAndRender(10_000), planAndRender(20_000))
    expect(ratio, `20,000 / 10,000 Mappings took ${ratio.toFixed(2)}x the work`).to.be.below(2.5)
  })

  it('diffs a one-entry change in sets twice as large with less than 2.5 times the work', () => {
    const diffOf = (count: number) => {
      const desired = planAndRender(count)()
      const actual = structuredClone(desired)
      actual.sets[0]!.entries = actual.sets[0]!.entries.slice(1)
      return () => expect(diffIptablesState(desired, actual).sets.update).to.have.length(1)
    }
    const ratio = workRatio(diffOf(10_000), diffOf(20_000))
    expect(ratio, `diff at 20,000 / 10,000 Mappings took ${ratio.toFixed(2)}x the work`).to.be.below(2.5)
  })

  it('tells the facts of 4,000 Mappings (status, explain) with less than 2.5 times the work of 2,000', async () => {
    const factsOf = async (count: number) => {
      const inspection = await inspectionOf(count)
      expect(mappingFacts(inspection).filter((f) => f.state === 'configured')).to.have.length(count)
      return () => mappingFacts(inspection)
    }
    const ratio = workRatio(await factsOf(2_000), await factsOf(4_000))
    expect(ratio, `facts of 4,000 / 2,000 Mappings took ${ratio.toFixed(2)}x the work`).to.be.below(2.5)
  })

  describe('kernel limits at 20,000 Mappings', () => {
    let state: IptablesState
    before(() => {
      state = planAndRender(20_000)()
    })

    it('sizes every set to hold its entries (SNM-ALLOW holds 80,000)', () => {
      const allow = state.sets.find((s) => s.name === 'SNM-ALLOW')!
      expect(allow.entries).to.have.length(80_000)
      expect(maxelemOf(allow.options)).to.equal(131_072)
      for (const set of state.sets) expect(maxelemOf(set.options), set.name).to.be.at.least(set.entries.length)
    })

    it('keeps chain names within 28 characters and set names, temporary ones too, within 31', () => {
      for (const table of Object.values(state.tables)) for (const chain of table.chains) expect(chain.name.length, chain.name).to.be.at.most(MAX_CHAIN_NAME)
      for (const set of state.sets) expect(tempSetName(set.name).length, set.name).to.be.at.most(MAX_SET_NAME)
    })

    it('keeps each address chain to the endpoints of its own address (400 rules, not 40,000)', () => {
      const longest = Math.max(...state.tables.nat.chains.filter((c) => c.name.startsWith('SNM-A-')).map((c) => c.rules.length))
      expect(longest).to.equal(400)
    })

    it('grows maxelem in powers of two from 65536', () => {
      expect([0, 65_536, 65_537, 131_072, 1_000_000].map((n) => maxelemOf(setOptions(n)))).to.deep.equal([65_536, 65_536, 131_072, 131_072, 1_048_576])
    })
  })
})
