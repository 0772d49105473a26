/**
 * `status` and `explain` skip cutting the kernel's state into parts when the backend's own diff
 * says a sync would write nothing (Backend.inspect.inSync). That is only sound if such a kernel never
 * has drift when the parts are compared: checked here over random edits of the desired state.
 */
import {expect} from 'chai'
import fc from 'fast-check'
import type {Backend} from '../../src/lib/backend/backend.js'
import {iptablesBackend} from '../../src/lib/backend/iptables/backend.js'
import type {IptablesState} from '../../src/lib/backend/iptables/types.js'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {elementParts, printElement} from '../../src/lib/backend/nftables/syntax.js'
import type {NftState} from '../../src/lib/backend/nftables/types.js'
import {diffParts, isClean} from '../../src/lib/inspect/drift.js'
import {parseIpAddrJson} from '../../src/lib/host/interfaces.js'
import {RecordingRunner} from '../support/recording-runner.js'
import type {NatModel} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {SETTINGS, snapshot} from './explain-fixture.js'

const IP_ADDR = JSON.stringify([
  {ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.10', prefixlen: 24}]},
  {ifname: 'eth2', addr_info: [{family: 'inet', local: '198.18.2.10', prefixlen: 24}]},
])

function model(): NatModel {
  return plan(snapshot(), parseIpAddrJson(IP_ADDR, SETTINGS.interfacesPattern), {...SETTINGS.plan, masquerade: true}).model
}

/** An edit of a kernel state: what a person, another tool or an interrupted run may leave behind. */
type Edit<State> = (state: State, pick: number) => void

function at<T>(items: T[], pick: number): number {
  return pick % items.length
}

function swap<T>(items: T[], pick: number): void {
  if (items.length < 2) return
  const i = at(items, pick)
  const j = (i + 1) % items.length
  ;[items[i], items[j]] = [items[j]!, items[i]!]
}

const IPTABLES_EDITS: Record<string, Edit<IptablesState>> = {
  'drop a rule': (s, pick) => {
    const chains = s.tables.nat.chains.filter((c) => c.rules.length > 0)
    const chain = chains[at(chains, pick)]!
    chain.rules.splice(at(chain.rules, pick), 1)
  },
  'repeat a rule': (s, pick) => {
    const chain = s.tables.nat.chains.find((c) => c.rules.length > 0)!
    chain.rules.push(chain.rules[at(chain.rules, pick)]!)
  },
  'reorder rules': (s, pick) => swap(s.tables.nat.chains.find((c) => c.rules.length > 1)!.rules, pick),
  'reorder chains': (s, pick) => swap(s.tables.nat.chains, pick),
  'drop a jump': (s) => void s.tables.filter.jumps.pop(),
  'add a stale chain': (s) => void s.tables.nat.chains.push({name: 'SNM-A-00000000', rules: ['-A SNM-A-00000000 -j RETURN']}),
  'drop a set entry': (s, pick) => {
    const set = s.sets.find((x) => x.entries.length > 0)
    set?.entries.splice(at(set.entries, pick), 1)
  },
  'add a set entry': (s) => void s.sets.find((x) => x.name === 'SNM-ENDPOINTS')?.entries.push('198.18.0.10,tcp:22'),
  'grow a hashsize': (s) => {
    for (const set of s.sets) set.options = set.options?.replace(/hashsize \d+/, 'hashsize 4096')
  },
  'change a maxelem': (s) => {
    const set = s.sets[0]
    if (set) set.options = set.options?.replace(/maxelem \d+/, 'maxelem 131072')
  },
  'drop a set': (s, pick) => void (s.sets.length > 0 && s.sets.splice(at(s.sets, pick), 1)),
  'drop an ip rule': (s) => void s.ipRules.pop(),
  'drop a route': (s) => void s.routes.pop(),
}

/** An edit of the table, a no-op once another edit dropped it. */
function ofTable(edit: Edit<NonNullable<NftState['table']>>): Edit<NftState> {
  return (s, pick) => {
    if (s.table) edit(s.table, pick)
  }
}

const NFT_EDITS: Record<string, Edit<NftState>> = {
  'drop a rule': ofTable((t, pick) => {
    const chains = t.chains.filter((c) => c.rules.length > 0)
    const chain = chains[at(chains, pick)]!
    chain.rules.splice(at(chain.rules, pick), 1)
  }),
  'reorder chains': ofTable((t, pick) => swap(t.chains, pick)),
  'drop an element': ofTable((t, pick) => {
    const sets = t.sets.filter((x) => x.elements.length > 0)
    if (sets.length === 0) return
    const set = sets[at(sets, pick)]!
    set.elements.splice(at(set.elements, pick), 1)
  }),
  'retarget a map element': ofTable((t) => {
    const set = t.sets.find((x) => x.dataType !== undefined && x.elements.length > 0)
    if (!set) return
    const {value, ...parts} = elementParts(set, set.elements[0]!)
    set.elements[0] = printElement(set, {...parts, value: value!.map((part, i) => (i === value!.length - 1 ? '1' : part))})
  }),
  'drop a set': ofTable((t, pick) => void (t.sets.length > 0 && t.sets.splice(at(t.sets, pick), 1))),
  'drop the table': (s) => void delete s.table,
  'drop an ip rule': (s) => void s.ipRules.pop(),
  'drop a route': (s) => void s.routes.pop(),
}

/**
 * For random edits of the desired state: a kernel the backend calls in sync has no drift, and
 * edits that the diff does not ignore are seen. Returns which edits left the kernel in sync.
 */
function checkShortcut<State>(backend: Backend<State>, edits: Record<string, Edit<State>>): Set<string> {
  const inspector = backend.inspect
  const m = model()
  const desired = backend.render(m)
  const desiredParts = inspector.parts(desired, m)
  expect(inspector.inSync(desired, structuredClone(desired)), 'an unedited copy').to.equal(true)
  const inSyncAlone = new Set<string>()
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.constantFrom(...Object.keys(edits)), fc.nat()), {minLength: 1, maxLength: 4}), (chosen) => {
      const actual = structuredClone(desired)
      for (const [name, pick] of chosen) edits[name]!(actual, pick)
      if (!inspector.inSync(desired, actual)) return
      if (chosen.length === 1) inSyncAlone.add(chosen[0]![0])
      const drift = diffParts(desiredParts, inspector.parts(actual, m))
      expect(isClean(drift), `in sync after ${chosen.map(([name]) => name).join(', ')}, yet drifted: ${JSON.stringify(drift)}`).to.equal(true)
    }),
    {numRuns: 400},
  )
  for (const name of Object.keys(edits)) {
    const actual = structuredClone(desired)
    edits[name]!(actual, 0)
    if (inspector.inSync(desired, actual)) inSyncAlone.add(name)
  }
  return inSyncAlone
}

describe('status and explain skip the parts of a kernel a sync would not write to', () => {
  it('iptables: no edit that keeps the kernel in sync hides drift; every other edit is seen', () => {
    const unnoticed = checkShortcut(iptablesBackend(new RecordingRunner()), IPTABLES_EDITS)
    // What the kernel reorders or grows on its own is not drift; everything else is.
    expect([...unnoticed].sort()).to.deep.equal(['grow a hashsize', 'reorder chains'])
  })

  it('nftables: no edit that keeps the kernel in sync hides drift; every other edit is seen', () => {
    const unnoticed = checkShortcut(nftablesBackend(new RecordingRunner()), NFT_EDITS)
    expect([...unnoticed].sort()).to.deep.equal(['reorder chains'])
  })
})
