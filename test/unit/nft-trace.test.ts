import {expect} from 'chai'
import fc from 'fast-check'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import {tracePacket} from '../../src/lib/backend/iptables/trace.js'
import type {Trace, TracePacket} from '../../src/lib/backend/trace-packet.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {traceNftPacket} from '../../src/lib/backend/nftables/trace.js'
import {elementParts, printElement, type ElementParts} from '../../src/lib/backend/nftables/syntax.js'
import type {NftChain, NftMatch, NftRule, NftSet, NftState} from '../../src/lib/backend/nftables/types.js'
import {groupChainName} from '../../src/lib/backend/nftables/names.js'
import {directModel} from './direct-model-fixture.js'
import {ip, manyEgressModel, sampleModel} from './nat-model-fixture.js'
import {sampleFlows} from './trace-flows-fixture.js'

/** Index of the first element of `set` whose parts pass `test`. */
const elementIndex = (set: NftSet, test: (parts: ElementParts) => boolean) => set.elements.findIndex((e) => test(elementParts(set, e)))

/** Gives the element of `set` at `index` the value `value`. */
function setValue(set: NftSet, index: number, value: string[]): void {
  set.elements[index] = printElement(set, {...elementParts(set, set.elements[index]!), value})
}

const DROP_UNALLOWED = 'ip daddr . meta l4proto . th dport @endpoints drop'

function summary(trace: Trace): string {
  switch (trace.verdict) {
    case 'dnat':
      return `dnat ${trace.to} ${trace.mapping ?? '?'}${trace.masqueraded ? ' masq' : ''}`
    case 'snat':
      return `snat ${trace.to}`
    case 'drop':
      return `drop ${trace.rule}`
    case 'group':
      return `group ${trace.members.join(',')}${trace.affinitySeconds === undefined ? '' : ` sticky ${trace.affinitySeconds}s`} ${trace.mapping ?? '?'}${trace.masqueraded ? ' masq' : ''}`
    case 'reject':
      return `reject ${trace.with}`
    case 'not-ours':
      return 'not-ours'
  }
}

/** The verdict without the rule text, which differs between backends by design. */
function outcome(trace: Trace): string {
  return trace.verdict === 'drop' ? 'drop' : summary(trace)
}

describe('traceNftPacket through the rendered table', () => {
  const flows = sampleFlows(DROP_UNALLOWED)
  const state = renderNftables(sampleModel())
  for (const {name, want, interfaceIndex, ...packet} of flows) {
    it(name, () => {
      const trace = traceNftPacket(state, packet)
      expect(summary(trace)).to.equal(want)
      if (interfaceIndex !== undefined) expect(trace.marks.interfaceIndex).to.equal(interfaceIndex)
    })
  }

  it('matches an element whose first part is a prefix by containment (a set edited by hand)', () => {
    const edited = renderNftables(sampleModel())
    const egress = edited.table!.sets.find((s) => s.name === 'egress_2')!
    egress.elements = [printElement(egress, {key: ['10.244.0.0/16'], comment: 'shop/web'})]
    const trace = traceNftPacket(edited, {src: '10.244.1.5', dst: '203.0.113.80', protocol: 'tcp', port: 443, outInterface: 'eth2'})
    expect(summary(trace)).to.equal('snat 198.18.1.10')
    expect(trace.marks.interfaceIndex).to.equal(2)
  })

  it('without masquerade, DNAT keeps the client address', () => {
    const trace = traceNftPacket(renderNftables(sampleModel({masquerade: false})), {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'})
    expect(summary(trace)).to.equal('dnat 198.19.100.10:8080 default/web')
    expect(trace.marks.masquerade).to.equal(false)
  })

  it('with an HA cluster-side address, DNAT leaves from that address', () => {
    const trace = traceNftPacket(renderNftables({...sampleModel(), masqueradeTo: ip('198.18.4.100')}), {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'})
    expect(trace).to.include({verdict: 'dnat', masqueraded: true, masqueradedTo: '198.18.4.100'})
    expect(trace.steps.at(-1)!.rule).to.equal('meta mark & 0x00080000 == 0x00080000 snat to 198.18.4.100')
  })

  it('records the marks and the rules a DNATed packet passed', () => {
    const trace = traceNftPacket(state, {src: '198.18.7.200', dst: '198.18.1.10', protocol: 'tcp', port: 80, inInterface: 'eth2'})
    expect(trace.marks).to.deep.equal({nfmark: 0x80000, ctmark: 0x200000, masquerade: true, egress: false, interfaceIndex: 2})
    expect(trace.steps.map((s) => `${s.table} ${s.chain}: ${s.rule}`)).to.deep.equal([
      'nat nat_prerouting: ip daddr . meta l4proto . th dport . ip saddr & 255.255.255.0 @allowed_24 goto nat_allowed',
      'nat nat_allowed: meta mark set meta mark | 0x00080000',
      'nat nat_allowed: iifname "eth2" ct mark set ct mark & 0xf02bffff | 0x00200000',
      'nat nat_allowed: dnat to ip daddr . meta l4proto . th dport map @endpoints',
      'filter forward: ct mark & 0x0ff00000 != 0x00000000 accept',
      'nat nat_postrouting: meta mark & 0x00080000 == 0x00080000 masquerade',
    ])
  })

  it('egress packets take the interface bits as packet mark for the reply table', () => {
    const trace = traceNftPacket(state, {src: '10.244.1.6', dst: '203.0.113.80', protocol: 'udp', port: 123, outInterface: 'eth2'})
    expect(trace.marks).to.deep.equal({nfmark: 0x200000, ctmark: 0x240000, masquerade: false, egress: true, interfaceIndex: 2})
    expect(trace.steps.map((s) => s.chain)).to.deep.equal(['mangle_prerouting', 'mangle_prerouting', 'restore_mark_2', 'forward', 'nat_postrouting'])
  })

  it('an absent table decides nothing', () => {
    expect(summary(traceNftPacket({ipRules: [], routes: []}, {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80}))).to.equal('not-ours')
  })

  it('gives the same verdict and marks as the iptables backend for any packet', () => {
    for (const model of [sampleModel(), sampleModel({masquerade: false}), sampleModel({egress: false}), {...sampleModel(), masqueradeTo: ip('198.18.4.100')}, manyEgressModel()]) {
      const nft = renderNftables(model)
      const iptables = renderIptables(model)
      const address = fc.constantFrom(
        ...['198.18.0.10', '198.18.1.10', '198.18.2.10', '198.18.9.9', '10.244.1.5', '10.244.1.6', '10.1.2.3', '198.18.5.5', '198.18.5.6', '198.18.7.9', '203.0.113.5'],
        ...['10.244.0.1', '10.244.0.4', '10.244.9.9', '0.0.0.1', '255.255.255.254', '198.18.4.100'],
      )
      const packet = fc.record({
        src: address,
        dst: address,
        protocol: fc.constantFrom('tcp' as const, 'udp' as const),
        port: fc.constantFrom(53, 80, 443, 8080),
        inInterface: fc.constantFrom(undefined, 'eth1', 'eth2', 'eth3'),
        outInterface: fc.constantFrom(undefined, 'eth1', 'eth2', 'eth3'),
      })
      fc.assert(
        fc.property(packet, (p) => {
          const input: TracePacket = {src: p.src, dst: p.dst, protocol: p.protocol, port: p.port}
          if (p.inInterface) input.inInterface = p.inInterface
          if (p.outInterface) input.outInterface = p.outInterface
          const a = traceNftPacket(nft, input)
          const b = tracePacket(iptables, input)
          expect(outcome(a)).to.equal(outcome(b))
          expect(a.marks).to.deep.equal(b.marks)
        }),
        {numRuns: 500, seed: 42},
      )
    }
  })

  describe('rejects what it does not understand', () => {
    function withNatRule(rule: NftRule): NftState {
      const state = renderNftables(sampleModel())
      state.table!.chains.find((c) => c.name === 'nat_prerouting')!.rules.unshift(rule)
      return state
    }
    const packet: TracePacket = {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'}
    const cases: [string, NftRule, RegExp][] = [
      ['a rule read back in a shape smartnat never renders', {unknown: '[{"counter":null}]'}, /holds a rule smartnat does not render: \[\{"counter":null\}\]/],
      ['a lookup in a missing set', {matches: [{kind: 'lookup', key: ['ip saddr'], set: 'nope', negate: false}], statement: {kind: 'drop'}}, /set nope, which the table does not hold/],
      ['a lookup with a key of the wrong width', {matches: [{kind: 'lookup', key: ['ip saddr'], set: 'allowed_32', negate: false}], statement: {kind: 'drop'}}, /set allowed_32 is keyed by ipv4_addr . inet_proto . inet_service . ipv4_addr, not ip saddr/],
      ['a source masked by something that is not an address', {matches: [{kind: 'lookup', key: ['ip saddr & 0xffffff00'], set: 'egress_2', negate: false}], statement: {kind: 'drop'}}, /unknown selector "ip saddr & 0xffffff00"/],
      ['a vmap goto to a missing chain', {matches: [], statement: {kind: 'vmap', of: 'ct', mask: 0, entries: [{value: 0, chain: 'gone'}]}}, /goto gone, which the table does not hold/],
      ['a goto to a missing chain', {matches: [], statement: {kind: 'goto', chain: 'gone'}}, /goto gone, which the table does not hold/],
    ]
    for (const [name, rule, error] of cases) {
      it(name, () => expect(() => traceNftPacket(withNatRule(rule), packet)).to.throw(error))
    }
  })
})

describe('traceNftPacket in mode direct', () => {
  const POD_8080 = 'group 10.244.2.1:8080,10.244.2.2:8080,10.244.2.3:8080'
  const POD_5353 = 'group 10.244.2.1:5353,10.244.2.2:5353 sticky 300s'
  const DROP_DIRECT = 'drop ip daddr . meta l4proto . th dport @direct_endpoints drop'
  const flows: (TracePacket & {name: string; want: string; interfaceIndex?: number})[] = [
    {name: 'tcp to a group of three pods', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 8080, inInterface: 'eth1', want: `${POD_8080} shop/api masq`, interfaceIndex: 1},
    {name: 'the same group from another address and interface', src: '203.0.113.200', dst: '198.18.2.10', protocol: 'tcp', port: 8080, inInterface: 'eth3', want: `${POD_8080} shop/api masq`, interfaceIndex: 3},
    {name: 'udp to a group with ClientIP affinity', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'udp', port: 5353, inInterface: 'eth1', want: `${POD_5353} shop/api masq`},
    {name: 'tcp to an empty group, from an allowed source', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 9000, inInterface: 'eth1', want: 'reject tcp-reset', interfaceIndex: 1},
    {name: 'udp to an empty group, from an allowed source', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'udp', port: 9000, inInterface: 'eth1', want: 'reject icmp-port-unreachable'},
    {name: 'tcp to an empty group, from a source not allowed', src: '198.18.7.9', dst: '198.18.0.10', protocol: 'tcp', port: 9000, inInterface: 'eth1', want: DROP_DIRECT},
    {name: 'udp to an empty group, from a source not allowed', src: '198.18.7.9', dst: '198.18.0.10', protocol: 'udp', port: 9000, inInterface: 'eth1', want: DROP_DIRECT},
    {name: 'tcp to a served group, from a source not allowed', src: '203.0.114.5', dst: '198.18.0.10', protocol: 'tcp', port: 8080, inInterface: 'eth1', want: DROP_DIRECT},
    {name: 'tcp to the udp-only port of a group', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 5353, inInterface: 'eth1', want: 'not-ours'},
    {name: 'a service Mapping on the same address still DNATs to its VIP', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1', want: 'dnat 198.19.100.10:8080 default/web masq'},
    {name: 'a service Mapping still drops a source it does not allow', src: '198.18.5.6', dst: '198.18.0.10', protocol: 'udp', port: 53, inInterface: 'eth1', want: `drop ${DROP_UNALLOWED}`},
  ]
  const state = renderNftables(directModel())
  for (const {name, want, interfaceIndex, ...packet} of flows) {
    it(name, () => {
      const trace = traceNftPacket(state, packet)
      expect(summary(trace)).to.equal(want)
      if (interfaceIndex !== undefined) expect(trace.marks.interfaceIndex).to.equal(interfaceIndex)
    })
  }

  it('names a group without affinity by its pick chain and records the rules the packet passed', () => {
    const trace = traceNftPacket(state, {src: '203.0.113.5', dst: '198.18.2.10', protocol: 'tcp', port: 8080, inInterface: 'eth3'})
    expect(trace).to.include({verdict: 'group', group: 'pick_3'})
    expect(trace.steps.map((s) => `${s.chain}: ${s.rule}`)).to.deep.equal([
      'nat_prerouting: ip daddr . meta l4proto . th dport . ip saddr & 255.255.255.0 @allowed_24 goto nat_allowed',
      'nat_allowed: meta mark set meta mark | 0x00080000',
      'nat_allowed: iifname "eth3" ct mark set ct mark & 0xf03bffff | 0x00300000',
      'nat_allowed: ip daddr . meta l4proto . th dport vmap @direct',
      'pick_3: dnat to ip daddr . meta l4proto . th dport . numgen random mod 3 map @targets',
      'forward: ct mark & 0x0ff00000 != 0x00000000 accept',
      'nat_postrouting: meta mark & 0x00080000 == 0x00080000 masquerade',
    ])
  })

  it('without masquerade, the pods see the client', () => {
    const trace = traceNftPacket(renderNftables(directModel({masquerade: false})), {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 8080, inInterface: 'eth1'})
    expect(summary(trace)).to.equal(`${POD_8080} shop/api`)
  })

  it('refuses with the rule that matched', () => {
    const trace = traceNftPacket(state, {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'udp', port: 9000, inInterface: 'eth1'})
    expect(trace).to.include({verdict: 'reject', with: 'icmp-port-unreachable', rule: 'ct mark & 0x0ff00000 != 0x00000000 ip daddr . meta l4proto . th dport @unserved meta l4proto udp reject'})
  })

  describe('rejects group and member chains of shapes it does not know', () => {
    const packet: TracePacket = {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'udp', port: 5353, inInterface: 'eth1'}
    const groupName = groupChainName('shop/api udp/53')
    function edited(edit: (state: NftState, group: NftChain, members: NftChain[]) => void): NftState {
      const copy = renderNftables(directModel())
      const chains = copy.table!.chains
      const group = chains.find((c) => c.name === groupName)!
      const pick = group.rules.at(-1)!
      const members = 'statement' in pick && pick.statement.kind === 'numgen' ? pick.statement.chains.map((name) => chains.find((c) => c.name === name)!) : []
      edit(copy, group, members)
      return copy
    }
    const cases: [string, (state: NftState, group: NftChain, members: NftChain[]) => void, RegExp][] = [
      ['a group chain without its random pick', (_, group) => group.rules.pop(), /group chain group_\w+ does not end in a numgen pick/],
      ['an affinity lookup for one member only', (_, group) => group.rules.splice(1, 1), /has affinity lookups for 1 of its 2 members/],
      ['an affinity lookup leading to another member', (_, group) => group.rules.splice(0, 2, group.rules[1]!, group.rules[0]!), /holds "ip saddr @affinity_\w+ goto member_\w+" where the affinity lookup of member member_\w+ belongs/],
      ['a member chain with a rule more', (_, __, [first]) => first!.rules.push({matches: [], statement: {kind: 'accept'}}), /member chain member_\w+ holds 3 rules/],
      ['a member chain that DNATs another protocol', (_, __, [first]) => ((first!.rules[1] as {matches: NftMatch[]}).matches = [{kind: 'l4proto', protocol: 'tcp'}]), /DNATs tcp only, and this packet is udp/],
      ['a member chain that updates another set', (_, __, [first, second]) => (first!.rules[0] = second!.rules[0]!), /does not begin with update @affinity_\w+/],
      ['an affinity set without a timeout', (state, __, [first]) => delete state.table!.sets.find((s) => 'statement' in first!.rules[0]! && first!.rules[0].statement.kind === 'update' && s.name === first!.rules[0].statement.set)!.timeout, /which is not a dynamic set with a timeout/],
      ['a direct map element that is not a goto', (state) => {
        const direct = state.table!.sets.find((s) => s.name === 'direct')!
        setValue(direct, elementIndex(direct, (e) => e.key[2] === '5353'), ['accept'])
      }, /map direct sends 198.18.0.10 . udp . 5353 to \["accept"\], not to a group chain/],
      ['a numgen pick outside a group chain', (state, group) => state.table!.chains.find((c) => c.name === 'nat_prerouting')!.rules.unshift(group.rules.at(-1)!), /chain nat_prerouting holds "numgen random mod 2 vmap/],
      ['a rule of unknown shape in a group chain', (_, group) => group.rules.unshift({unknown: '[{"counter":null}]'}), /group chain group_\w+ holds a rule smartnat does not render/],
    ]
    for (const [name, edit, error] of cases) {
      it(name, () => expect(() => traceNftPacket(edited(edit), packet)).to.throw(error))
    }
  })

  describe('rejects pick chains and targets of shapes it does not know', () => {
    const packet: TracePacket = {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 8080, inInterface: 'eth1'}
    const edited = (edit: (state: NftState, pick: NftChain, targets: NftSet) => void): NftState => {
      const copy = renderNftables(directModel())
      edit(copy, copy.table!.chains.find((c) => c.name === 'pick_3')!, copy.table!.sets.find((s) => s.name === 'targets')!)
      return copy
    }
    const slot = (targets: NftSet, n: string) => elementIndex(targets, (e) => e.key.join(' ') === `198.18.0.10 tcp 8080 ${n}`)
    const pickRule = (pick: NftChain) => pick.rules[0] as {matches: NftMatch[]; statement: {modulus: number; key: string[]}}
    const cases: [string, (state: NftState, pick: NftChain, targets: NftSet) => void, RegExp][] = [
      ['a slot missing', (_, __, targets) => targets.elements.splice(slot(targets, '1'), 1), /pick chain pick_3 finds no member in slot 1 of 198.18.0.10 . tcp . 8080 in targets/],
      ['a slot more than the pick reaches', (_, __, targets) => targets.elements.push(printElement(targets, {key: ['198.18.0.10', 'tcp', '8080', '3'], value: ['10.244.2.9', '8080']})), /finds 4 members of 198.18.0.10 . tcp . 8080 in targets, not 3/],
      ['one member in two slots', (_, __, targets) => setValue(targets, slot(targets, '1'), ['10.244.2.1', '8080']), /finds a member twice for 198.18.0.10 . tcp . 8080/],
      ['a pick whose modulus is not in its name', (_, pick) => (pickRule(pick).statement.modulus = 2), /pick chain pick_3 picks among 2 members/],
      ['a pick with a match', (_, pick) => pickRule(pick).matches.push({kind: 'l4proto', protocol: 'tcp'}), /pick chain pick_3 holds "meta l4proto tcp dnat to .*", not a pick by endpoint and slot/],
      ['a pick by another key', (_, pick) => (pickRule(pick).statement.key = ['ip saddr', 'meta l4proto', 'th dport']), /not a pick by endpoint and slot/],
      ['targets of another type', (_, __, targets) => (targets.dataType = ['ipv4_addr']), /looks up targets, which is not keyed by endpoint and slot to an address and port/],
      ['a pick chain with a rule more', (_, pick) => pick.rules.push({matches: [], statement: {kind: 'accept'}}), /group chain pick_3 does not end in a numgen pick/],
      ['a pick outside a pick chain', (state, pick) => state.table!.chains.find((c) => c.name === 'nat_prerouting')!.rules.unshift(pick.rules[0]!), /chain nat_prerouting holds "dnat to ip daddr . meta l4proto . th dport . numgen random mod 3 map @targets", which smartnat renders only in a pick/],
    ]
    for (const [name, edit, error] of cases) {
      it(name, () => expect(() => traceNftPacket(edited(edit), packet)).to.throw(error))
    }
  })
})
