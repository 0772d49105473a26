import {expect} from 'chai'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import {tracePacket} from '../../src/lib/backend/iptables/trace.js'
import type {Trace, TracePacket} from '../../src/lib/backend/trace-packet.js'
import type {IptablesState} from '../../src/lib/backend/iptables/types.js'
import {affinityListName, groupChainName} from '../../src/lib/backend/iptables/names.js'
import {directModel} from './iptables-direct-fixture.js'
import {ip, manyEgressModel, sampleModel} from './nat-model-fixture.js'
import {sampleFlows} from './trace-flows-fixture.js'

const DROP_UNALLOWED = '-A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP'

/** One line per outcome, so a table row reads like the expectation a person would write. */
function summary(trace: Trace): string {
  switch (trace.verdict) {
    case 'dnat':
      return `dnat ${trace.to} ${trace.mapping ?? '?'}${trace.masqueraded ? ' masq' : ''}`
    case 'snat':
      return `snat ${trace.to}`
    case 'group':
      return `group ${trace.group} ${trace.members.join(',')}${trace.affinitySeconds === undefined ? '' : ` affinity ${trace.affinitySeconds}`} ${trace.mapping ?? '?'}${trace.masqueraded ? ' masq' : ''}`
    case 'drop':
      return `drop ${trace.rule}`
    case 'reject':
      return `reject ${trace.with} ${trace.rule}`
    case 'not-ours':
      return 'not-ours'
  }
}

describe('tracePacket through rendered rules', () => {
  const flows = sampleFlows(DROP_UNALLOWED)
  const state = renderIptables(sampleModel())
  for (const {name, want, interfaceIndex, ...packet} of flows) {
    it(name, () => {
      const trace = tracePacket(state, packet)
      expect(summary(trace)).to.equal(want)
      if (interfaceIndex !== undefined) expect(trace.marks.interfaceIndex).to.equal(interfaceIndex)
    })
  }

  it('without masquerade, DNAT keeps the client address', () => {
    const trace = tracePacket(renderIptables(sampleModel({masquerade: false})), {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'})
    expect(summary(trace)).to.equal('dnat 198.19.100.10:8080 default/web')
    expect(trace.marks.masquerade).to.equal(false)
  })

  it('with an HA cluster-side address, DNAT leaves from that address', () => {
    const trace = tracePacket(renderIptables({...sampleModel(), masqueradeTo: ip('198.18.4.100')}), {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'})
    expect(trace).to.include({verdict: 'dnat', masqueraded: true, masqueradedTo: '198.18.4.100'})
    expect(trace.steps.at(-1)!.rule).to.equal('-A SNM-POSTROUTING -m mark --mark 0x80000/0x80000 -j SNAT --to-source 198.18.4.100')
  })

  it('records the marks and the rules a DNATed packet passed', () => {
    const trace = tracePacket(state, {src: '198.18.7.200', dst: '198.18.1.10', protocol: 'tcp', port: 80, inInterface: 'eth2'})
    expect(trace.marks).to.deep.equal({nfmark: 0x80000, ctmark: 0x200000, masquerade: true, egress: false, interfaceIndex: 2})
    expect(trace.steps.map((s) => `${s.table} ${s.rule}`)).to.deep.equal([
      'mangle -A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING',
      'nat -A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING',
      'nat -A SNM-PREROUTING -j MARK --set-xmark 0x80000/0x80000',
      'nat -A SNM-PREROUTING -i eth2 -j CONNMARK --set-xmark 0x200000/0xff40000',
      'nat -A SNM-PREROUTING -d 198.18.1.10/32 -j SNM-A-51e24ba1',
      'nat -A SNM-A-51e24ba1 -p tcp -m tcp --dport 80 -m comment --comment "shop/web tcp/80" -j DNAT --to-destination 198.19.100.20:80',
      'filter -A FORWARD -m comment --comment smartnat -j SNM-FORWARD',
      'filter -A SNM-FORWARD -m connmark ! --mark 0x0/0xff00000 -j ACCEPT',
      'nat -A POSTROUTING -m comment --comment smartnat -j SNM-POSTROUTING',
      'nat -A SNM-POSTROUTING -m mark --mark 0x80000/0x80000 -j MASQUERADE',
    ])
  })

  it('egress packets take the interface bits as packet mark for the reply table', () => {
    const trace = tracePacket(state, {src: '10.244.1.6', dst: '203.0.113.80', protocol: 'udp', port: 123, outInterface: 'eth2'})
    expect(trace.marks).to.deep.equal({nfmark: 0x200000, ctmark: 0x240000, masquerade: false, egress: true, interfaceIndex: 2})
  })

  it('egress through many addresses: the last address naming a pod picks its interface, the first one per out interface its source', () => {
    const model = manyEgressModel()
    const many = renderIptables(model)
    const flows: [string, string, string, number][] = [
      ['10.244.0.1', 'eth1', 'snat 198.18.0.20', 1],
      ['10.244.0.3', 'eth1', 'snat 198.18.0.20', 1],
      ['10.244.0.4', 'eth2', 'snat 198.18.1.20', 2],
      ['10.244.0.4', 'eth1', 'snat 198.18.0.20', 2],
      ['10.244.9.9', 'eth2', 'snat 198.18.1.39', 2],
      ['10.244.9.9', 'eth1', 'not-ours', 2],
      ['10.244.0.1', 'eth2', 'not-ours', 1],
    ]
    for (const [src, outInterface, want, interfaceIndex] of flows) {
      const trace = tracePacket(many, {src, dst: '203.0.113.80', protocol: 'tcp', port: 443, outInterface})
      expect(`${src} ${outInterface} ${summary(trace)} ${trace.marks.interfaceIndex}`).to.equal(`${src} ${outInterface} ${want} ${interfaceIndex}`)
      expect(trace.marks.egress).to.equal(true)
    }
    // An inbound connection meets one egress lookup per interface in mangle, and none in nat POSTROUTING.
    const inbound = tracePacket(many, {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'})
    expect(summary(inbound)).to.equal('dnat 198.19.100.10:8080 default/web masq')
    expect(inbound.steps.filter((s) => s.chain === 'SNM-SNAT')).to.deep.equal([])
    expect(model.egress).to.have.length(40)
  })

  describe('rejects what it does not understand', () => {
    function withNatRule(rule: string): IptablesState {
      const state = renderIptables(sampleModel())
      state.tables.nat.chains[0]!.rules.unshift(rule)
      return state
    }
    const packet: TracePacket = {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'}
    const unknown: [string, RegExp][] = [
      ['-A SNM-PREROUTING -s 203.0.113.0/24 -j ACCEPT', /unknown rule shape \(option -s\)/],
      ['-A SNM-PREROUTING ! -d 198.18.0.10/32 -j RETURN', /unknown rule shape \(option !\)/],
      ['-A SNM-PREROUTING -p tcp -m multiport --dports 80,443 -j RETURN', /unknown rule shape \(match module multiport\)/],
      ['-A SNM-PREROUTING -j LOG --log-prefix x', /unknown rule shape \(target LOG\)/],
      ['-A SNM-PREROUTING -i eth+ -j RETURN', /unknown rule shape \(wildcard interface eth\+\)/],
      ['-A SNM-PREROUTING -j RETURN --extra', /unknown rule shape \(words after the target\)/],
      ['-A SNM-PREROUTING -m set --match-set SNM-ALLOW src -j RETURN', /unknown set lookup hash:ip,port,net src/],
      ['-A SNM-PREROUTING -j SNM-MISSING', /jump to SNM-MISSING, which table nat does not hold/],
    ]
    for (const [rule, error] of unknown) {
      it(rule, () => expect(() => tracePacket(withNatRule(rule), packet)).to.throw(error))
    }
  })
})

describe('tracePacket through rendered rules, mode direct', () => {
  const CART = groupChainName('shop/cart tcp/80')
  const CART_UDP = groupChainName('shop/cart udp/9000')
  const STICKY = groupChainName('default/sticky tcp/443')
  const REFUSE_TCP = '-A SNM-INPUT -p tcp -m set --match-set SNM-UNSERVED dst,dst -m connmark ! --mark 0x0/0xff00000 -j REJECT --reject-with tcp-reset'
  const REFUSE_UDP = '-A SNM-INPUT -p udp -m set --match-set SNM-UNSERVED dst,dst -m connmark ! --mark 0x0/0xff00000 -j REJECT --reject-with icmp-port-unreachable'
  const flows: (TracePacket & {name: string; want: string; interfaceIndex?: number})[] = [
    {name: 'tcp to a group of three', src: '203.0.113.5', dst: '198.18.1.10', protocol: 'tcp', port: 8080, inInterface: 'eth2', want: `group ${CART} 198.19.200.11:8080,198.19.200.12:8080,198.19.200.13:8081 shop/cart masq`, interfaceIndex: 2},
    {name: 'the same group through another address', src: '203.0.113.5', dst: '198.18.2.10', protocol: 'tcp', port: 8080, inInterface: 'eth3', want: `group ${CART} 198.19.200.11:8080,198.19.200.12:8080,198.19.200.13:8081 shop/cart masq`, interfaceIndex: 3},
    {name: 'udp to a group of one', src: '203.0.113.5', dst: '198.18.1.10', protocol: 'udp', port: 9000, inInterface: 'eth2', want: `group ${CART_UDP} 198.19.200.14:9000 shop/cart masq`},
    {name: 'a group with ClientIP affinity', src: '198.18.7.9', dst: '198.18.0.10', protocol: 'tcp', port: 8443, inInterface: 'eth1', want: `group ${STICKY} 198.19.200.21:8443,198.19.200.22:8443 affinity 10800 default/sticky masq`, interfaceIndex: 1},
    {name: 'a group, source not allowed', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 8443, inInterface: 'eth1', want: `drop ${DROP_UNALLOWED}`},
    {name: 'tcp to an empty group is reset', src: '198.18.7.9', dst: '198.18.0.10', protocol: 'tcp', port: 9090, inInterface: 'eth1', want: `reject tcp-reset ${REFUSE_TCP}`, interfaceIndex: 1},
    {name: 'udp to an empty group is refused with port unreachable', src: '198.18.7.9', dst: '198.18.0.10', protocol: 'udp', port: 9090, inInterface: 'eth1', want: `reject icmp-port-unreachable ${REFUSE_UDP}`},
    {name: 'an empty group, source not allowed: dropped, not refused', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 9090, inInterface: 'eth1', want: `drop ${DROP_UNALLOWED}`},
    {name: 'an empty group, from no external interface: dropped, not refused', src: '198.18.7.9', dst: '198.18.0.10', protocol: 'udp', port: 9090, want: `drop ${DROP_UNALLOWED}`},
    {name: 'a service-mode Mapping on the same address still DNATs', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1', want: 'dnat 198.19.100.10:8080 default/web masq'},
    {name: 'a port no Mapping uses on that address', src: '198.18.7.9', dst: '198.18.0.10', protocol: 'tcp', port: 9091, inInterface: 'eth1', want: 'not-ours'},
  ]
  const state = renderIptables(directModel())
  for (const {name, want, interfaceIndex, ...packet} of flows) {
    it(name, () => {
      const trace = tracePacket(state, packet)
      expect(summary(trace)).to.equal(want)
      if (interfaceIndex !== undefined) expect(trace.marks.interfaceIndex).to.equal(interfaceIndex)
    })
  }

  it('without masquerade, a group keeps the client address', () => {
    const trace = tracePacket(renderIptables(directModel({masquerade: false})), {src: '203.0.113.5', dst: '198.18.1.10', protocol: 'udp', port: 9000, inInterface: 'eth2'})
    expect(summary(trace)).to.equal(`group ${CART_UDP} 198.19.200.14:9000 shop/cart`)
  })

  it('records the jump into the group as the step that decided, then the way out', () => {
    const trace = tracePacket(state, {src: '198.18.7.9', dst: '198.18.0.10', protocol: 'tcp', port: 8443, inInterface: 'eth1'})
    expect(trace.steps.filter((s) => s.table === 'nat' && s.chain.startsWith('SNM-A-')).map((s) => s.rule)).to.deep.equal([
      `-A SNM-A-5b4665a2 -p tcp -m tcp --dport 8443 -m comment --comment "default/sticky tcp/8443" -j ${STICKY}`,
    ])
    expect(trace.steps.at(-1)!.rule).to.equal('-A SNM-POSTROUTING -m mark --mark 0x80000/0x80000 -j MASQUERADE')
  })

  describe('rejects group chains of a shape the renderer does not write', () => {
    const packet: TracePacket = {src: '198.18.7.9', dst: '198.18.0.10', protocol: 'tcp', port: 8443, inInterface: 'eth1'}
    const cart: TracePacket = {src: '203.0.113.5', dst: '198.18.1.10', protocol: 'tcp', port: 8080, inInterface: 'eth2'}
    const L1 = affinityListName('default/sticky tcp/443', {ip: ip('198.19.200.21'), port: 8443})
    const L2 = affinityListName('default/sticky tcp/443', {ip: ip('198.19.200.22'), port: 8443})
    function edited(edit: (rules: Map<string, string[]>) => void): IptablesState {
      const edited = renderIptables(directModel())
      const rules = new Map(edited.tables.nat.chains.map((c) => [c.name, c.rules]))
      edit(rules)
      return edited
    }
    const swap = (rule: string, from: string, to: string) => {
      if (!rule.includes(from)) throw new Error(`test: ${from} not in ${rule}`)
      return rule.replace(from, to)
    }
    const cases: [string, (rules: Map<string, string[]>) => void, TracePacket, RegExp][] = [
      ['an uneven pick', (r) => (r.get(CART)![0] = swap(r.get(CART)![0]!, '0.33333333349', '0.50000000000')), cart, /member 1 of 3 is not picked with probability 1\/3/],
      ['a member left out of the spread', (r) => r.get(CART)!.splice(1, 1), cart, /member 1 of 2 is not picked with probability 1\/2/],
      ['a member listed twice', (r) => (r.get(CART)![1] = swap(r.get(CART)![1]!, '198.19.200.12:8080', '198.19.200.11:8080')), cart, /a member is listed twice/],
      ['affinity checks in another order', (r) => r.get(STICKY)!.splice(0, 2, ...r.get(STICKY)!.slice(0, 2).reverse()), packet, /affinity checks do not name the members and lists in the order they are spread over/],
      ['an affinity check on another list', (r) => (r.get(STICKY)![0] = swap(r.get(STICKY)![0]!, `--name ${L1}`, `--name ${L2}`)), packet, /affinity checks do not name the members and lists/],
      ['two members sharing a list', (r) => (r.get(STICKY)![3] = swap(r.get(STICKY)![3]!, `--name ${L2}`, `--name ${L1}`)), packet, /two members share an affinity list/],
      ['affinity checks with two timeouts', (r) => (r.get(STICKY)![1] = swap(r.get(STICKY)![1]!, '--seconds 10800', '--seconds 60')), packet, /members with different affinity timeouts/],
      ['affinity without recording the client', (r) => (r.get(STICKY)![2] = swap(r.get(STICKY)![2]!, ` -m recent --set --name ${L1} --mask 255.255.255.255 --rsource`, '')), packet, /member 1 of 2 is not remembered for affinity/],
      ['recording the client before the draw', (r) => (r.get(STICKY)![2] = `-A ${STICKY} -p tcp -m recent --set --name ${L1} --mask 255.255.255.255 --rsource -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 198.19.200.21:8443`), packet, /member 1 of 2 is not picked with probability 1\/2/],
      ['recording without affinity checks', (r) => (r.get(CART)![2] = `${swap(r.get(CART)![2]!, ' -j DNAT', ` -m recent --set --name ${L1} --mask 255.255.255.255 --rsource -j DNAT`)}`), cart, /member 3 of 3 is not picked by one random draw/],
      ['a member DNATing another protocol', (r) => (r.get(STICKY)![3] = swap(r.get(STICKY)![3]!, '-p tcp', '-p udp')), packet, /rule does not DNAT tcp/],
      ['a group jumping to another chain', (r) => (r.get(CART)![2] = `-A ${CART} -j SNM-A-5b4665a2`), cart, /rule does not DNAT to a member/],
      ['a group rule with a comment', (r) => (r.get(CART)![2] = swap(r.get(CART)![2]!, ' -j DNAT', ' -m comment --comment x -j DNAT')), cart, /member 3 of 3 is not picked by one random draw/],
      ['a random pick outside a group chain', (r) => r.get('SNM-PREROUTING')!.unshift('-A SNM-PREROUTING -m statistic --mode random --probability 0.50000000000 -j RETURN'), cart, /statistic match outside the group chain/],
      ['recent with another mask', (r) => (r.get(STICKY)![0] = swap(r.get(STICKY)![0]!, '--mask 255.255.255.255', '--mask 255.255.255.0')), packet, /unknown rule shape \(expected 255.255.255.255, found 255.255.255.0\)/],
      ['recent --rcheck instead of --update', (r) => (r.get(STICKY)![0] = swap(r.get(STICKY)![0]!, '--update', '--rcheck')), packet, /unknown rule shape \(expected --set, found --rcheck\)/],
      ['recent on a list smartnat does not own', (r) => (r.get(STICKY)![2] = swap(r.get(STICKY)![2]!, `--name ${L1}`, '--name other')), packet, /unknown rule shape \(recent list other\)/],
      ['a rule without target', (r) => r.get(STICKY)!.unshift(`-A ${STICKY} -m recent --set --name ${L1} --mask 255.255.255.255 --rsource`), packet, /unknown rule shape \(expected -j at the end\)/],
      ['a probability printed otherwise', (r) => (r.get(CART)![0] = swap(r.get(CART)![0]!, '0.33333333349', '0.3333')), cart, /unknown rule shape \(probability 0.3333\)/],
      ['REJECT with another reply', (r) => r.get('SNM-PREROUTING')!.unshift('-A SNM-PREROUTING -j REJECT --reject-with icmp-host-prohibited'), cart, /unknown rule shape \(--reject-with icmp-host-prohibited\)/],
    ]
    for (const [name, edit, flow, error] of cases) {
      it(name, () => expect(() => tracePacket(edited(edit), flow)).to.throw(error))
    }
  })
})
