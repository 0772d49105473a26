import {expect} from 'chai'
import {fileURLToPath} from 'node:url'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {parseRuleExpressions} from '../../src/lib/backend/nftables/parse.js'
import {elementParts, printRule, renderNftScript} from '../../src/lib/backend/nftables/syntax.js'
import {traceNftPacket} from '../../src/lib/backend/nftables/trace.js'
import type {NftState} from '../../src/lib/backend/nftables/types.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {readManifests} from '../../src/lib/source/file.js'
import {cidr, ip, sampleModel} from './nat-model-fixture.js'

function elements(state: NftState, name: string): string[] {
  const set = state.table!.sets.find((s) => s.name === name)!
  return set.elements
}

function chain(state: NftState, name: string): string[] {
  return state.table!.chains.find((c) => c.name === name)!.rules.map(printRule)
}

describe('renderNftables', () => {
  const state = renderNftables(sampleModel())

  it('hooks one chain per hook, each one below the iptables table of that hook', () => {
    expect(state.table!.chains.map((c) => (c.base ? `${c.name} ${c.base.type} ${c.base.hook} ${c.base.priority}` : c.name))).to.deep.equal([
      'mangle_prerouting filter prerouting -151',
      'nat_prerouting nat prerouting -101',
      'nat_postrouting nat postrouting 99',
      'input filter input -1',
      'forward filter forward -1',
      'nat_allowed',
      'restore_mark_1',
      'restore_mark_2',
      'restore_mark_3',
    ])
  })

  it('dispatches through maps: the number of rules does not grow with the Mappings', () => {
    const many = sampleModel()
    const web = many.mappings[1]!
    for (let port = 1000; port < 1500; port++) {
      web.endpoints.push({address: ip('198.18.2.10'), protocol: 'udp', port, targetIP: web.serviceVIP!, targetPort: port})
    }
    const bigger = renderNftables(many)
    expect(bigger.table!.chains.map((c) => c.rules.map(printRule))).to.deep.equal(state.table!.chains.map((c) => c.rules.map(printRule)))
    expect(elements(bigger, 'endpoints')).to.have.length(505)
  })

  it('looks the source up once per prefix length present, longest first, then marks and DNATs like SNM-PREROUTING', () => {
    expect(chain(state, 'nat_prerouting')).to.deep.equal([
      'ip daddr . meta l4proto . th dport . ip saddr @allowed_32 goto nat_allowed',
      'ip daddr . meta l4proto . th dport . ip saddr & 255.255.255.0 @allowed_24 goto nat_allowed',
      'ip daddr . meta l4proto . th dport . ip saddr & 255.0.0.0 @allowed_8 goto nat_allowed',
      'ip daddr . meta l4proto . th dport @allowed_0 goto nat_allowed',
    ])
    expect(state.table!.sets.filter((s) => s.name.startsWith('allowed_')).map((s) => `${s.name}: ${s.keyType.join(' . ')} ${s.flags.join(',')}`)).to.deep.equal([
      'allowed_0: ipv4_addr . inet_proto . inet_service ',
      'allowed_24: ipv4_addr . inet_proto . inet_service . ipv4_addr ',
      'allowed_32: ipv4_addr . inet_proto . inet_service . ipv4_addr ',
      'allowed_8: ipv4_addr . inet_proto . inet_service . ipv4_addr ',
    ])
    expect(chain(state, 'nat_allowed')).to.deep.equal([
      'meta mark set meta mark | 0x00080000',
      'iifname "eth1" ct mark set ct mark & 0xf01bffff | 0x00100000',
      'iifname "eth2" ct mark set ct mark & 0xf02bffff | 0x00200000',
      'iifname "eth3" ct mark set ct mark & 0xf03bffff | 0x00300000',
      'dnat to ip daddr . meta l4proto . th dport map @endpoints',
    ])
    expect(chain(renderNftables(sampleModel({masquerade: false})), 'nat_postrouting')).to.deep.equal([
      'ct mark & 0x00040000 == 0x00040000 snat to oifname . ip saddr map @egress_snat',
    ])
    expect(chain(renderNftables(sampleModel({egress: false})), 'nat_postrouting')).to.deep.equal(['meta mark & 0x00080000 == 0x00080000 masquerade'])
  })

  it('with an HA cluster-side address, SNATs marked traffic to it instead of masquerading, and reads that rule back', () => {
    const rendered = renderNftables({...sampleModel({egress: false}), masqueradeTo: ip('198.18.4.100')})
    expect(chain(rendered, 'nat_postrouting')).to.deep.equal(['meta mark & 0x00080000 == 0x00080000 snat to 198.18.4.100'])
    // As `nft -j list` prints the rule.
    const listed = [{match: {op: '==', left: {'&': [{meta: {key: 'mark'}}, 524288]}, right: 524288}}, {snat: {addr: '198.18.4.100'}}]
    expect(parseRuleExpressions(listed)).to.deep.equal(rendered.table!.chains.find((c) => c.name === 'nat_postrouting')!.rules[0])
  })

  it('with an HA cluster-side address, drops what reaches the host for that address, and reads that rule back', () => {
    const rendered = renderNftables({...sampleModel({egress: false}), masqueradeTo: ip('198.18.4.100')})
    expect(chain(rendered, 'input')).to.deep.equal(['ip daddr . meta l4proto . th dport @endpoints drop', 'ip daddr 198.18.4.100 drop'])
    expect(chain(renderNftables(sampleModel({egress: false})), 'input')).to.deep.equal(['ip daddr . meta l4proto . th dport @endpoints drop'])
    // As `nft -j list` prints the rule.
    const listed = [{match: {op: '==', left: {payload: {protocol: 'ip', field: 'daddr'}}, right: '198.18.4.100'}}, {drop: null}]
    expect(parseRuleExpressions(listed)).to.deep.equal(rendered.table!.chains.find((c) => c.name === 'input')!.rules[1])
  })

  it('names the Mapping in every element comment', () => {
    expect(elements(state, 'endpoints')).to.deep.equal([
      '198.18.0.10 . tcp . 443 comment "default/web tcp/443" : 198.19.100.10 . 8443',
      '198.18.0.10 . tcp . 80 comment "default/web tcp/80" : 198.19.100.10 . 8080',
      '198.18.0.10 . udp . 53 comment "default/dns udp/53" : 198.19.100.11 . 53',
      '198.18.1.10 . tcp . 80 comment "shop/web tcp/80" : 198.19.100.20 . 80',
      '198.18.2.10 . tcp . 80 comment "default/web tcp/80" : 198.19.100.10 . 8080',
    ])
    expect(elements(state, 'allowed_8')).to.deep.equal(['198.18.0.10 . udp . 53 . 10.0.0.0 comment "default/dns"'])
    expect(elements(state, 'allowed_32')).to.deep.equal(['198.18.0.10 . udp . 53 . 198.18.5.5 comment "default/dns"'])
    expect(elements(state, 'allowed_24')).to.deep.equal(['198.18.1.10 . tcp . 80 . 198.18.7.0 comment "shop/web"'])
    expect(elements(state, 'allowed_0')).to.deep.equal([
      '198.18.0.10 . tcp . 443 comment "default/web"',
      '198.18.0.10 . tcp . 80 comment "default/web"',
      '198.18.2.10 . tcp . 80 comment "default/web"',
    ])
    expect(elements(state, 'egress_snat')).to.deep.equal([
      '"eth2" . 10.244.1.5 comment "shop/web" : 198.18.1.10',
      '"eth2" . 10.244.1.6 comment "shop/web" : 198.18.1.10',
    ])
  })

  it('cuts a long Mapping name to fit nft\'s 128-character comment, keeping the port', () => {
    const model = sampleModel()
    model.mappings[0]!.name = 'd'.repeat(200)
    const set = renderNftables(model).table!.sets.find((s) => s.name === 'endpoints')!
    const comment = set.elements.map((e) => elementParts(set, e)).find((e) => e.key[2] === '53')!.comment!
    expect(comment).to.have.length(128)
    expect(comment).to.match(/^default\/d+ udp\/53$/)
  })

  it('keeps only the outermost of nested allowed prefixes, once each', () => {
    const model = sampleModel()
    model.mappings[0]!.allowedSources = [cidr('10.1.0.0/16'), cidr('10.0.0.0/8'), cidr('10.0.0.0/8'), cidr('11.0.0.1/32')]
    const state = renderNftables(model)
    expect(state.table!.sets.map((s) => s.name)).to.not.include('allowed_16')
    expect(elements(state, 'allowed_8')).to.deep.equal(['198.18.0.10 . udp . 53 . 10.0.0.0 comment "default/dns"'])
    expect(elements(state, 'allowed_32')).to.deep.equal(['198.18.0.10 . udp . 53 . 11.0.0.1 comment "default/dns"'])
  })

  const refusals: [string, (m: ReturnType<typeof sampleModel>) => void, RegExp][] = [
    ['an endpoint claimed twice', (m) => m.mappings[2]!.endpoints.push({...m.mappings[1]!.endpoints[0]!}), /mapping shop\/web: endpoint 198.18.0.10 tcp\/80 is also claimed by default\/web/],
    ['an interface name nft cannot hold', (m) => (m.interfaces[0]!.name = 'eth"1'), /interface name "eth\\"1" cannot be used in rules/],
    ['egress on an interface that is not external', (m) => (m.egress[0]!.interface = 'eth9'), /egress uses interface "eth9", which is not an external interface/],
    ['a port outside 1..65535', (m) => (m.mappings[0]!.endpoints[0]!.port = 0), /mapping default\/dns: port 0 -> 53 is outside 1..65535/],
    ['a name that could break a comment', (m) => (m.mappings[0]!.name = 'we"b'), /mapping "default\/we\\"b": name cannot be used in an element comment/],
  ]
  for (const [name, edit, error] of refusals) {
    it(`refuses ${name}`, () => {
      const model = sampleModel()
      edit(model)
      expect(() => renderNftables(model)).to.throw(error)
    })
  }

  it('reuses the iptables backend\'s ip rules and routes', () => {
    expect(state.ipRules).to.deep.equal([
      {priority: 7001, fwmark: '0x100000/0xff00000', table: 7001},
      {priority: 7002, fwmark: '0x200000/0xff00000', table: 7002},
    ])
    expect(state.routes.map((r) => `${r.table} ${r.dst}`)).to.deep.equal(['7001 198.18.0.0/24', '7001 default', '7002 198.18.1.0/24', '7002 198.18.3.0/25', '7002 default'])
  })
})

describe('renderNftScript', () => {
  it('adds, deletes and redefines the table in one transaction', () => {
    const script = renderNftScript(renderNftables(sampleModel()))
    const lines = script.split('\n')
    expect(lines.slice(0, 3)).to.deep.equal(['table ip smartnat', 'delete table ip smartnat', 'table ip smartnat {'])
    expect(lines.at(-2)).to.equal('}')
    expect(script).to.include('\t\ttype nat hook prerouting priority -101; policy accept;\n')
    expect(script).to.include('\t\telements = {\n\t\t\t198.18.0.10 . tcp . 443 comment "default/web tcp/443" : 198.19.100.10 . 8443,\n')
    expect(script).not.to.match(/other|filter \{|table ip (nat|filter|mangle)/)
  })

  it('leaves out the elements clause of an empty set, which nft would refuse', () => {
    const script = renderNftScript(renderNftables({mappings: [], interfaces: [], egress: [], masquerade: true}))
    expect(script).to.include('\tmap endpoints {\n\t\ttype ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service\n\t}\n')
    expect(script).not.to.include('elements')
  })
})

describe('renderNftables over plan() of the examples', () => {
  const edge: HostInfo = {
    interfaces: [{name: 'eth1', addresses: ['198.18.0.10', '198.18.0.11', '198.18.0.12'].map((a) => ({address: ip(a), prefixLength: 24}))}],
  }

  it('multi-port.yaml: port translation on two addresses, two allowed sources', async () => {
    const snapshot = await readManifests(fileURLToPath(new URL('../../examples/multi-port.yaml', import.meta.url)))
    const state = renderNftables(plan(snapshot, edge, DEFAULT_PLAN_OPTIONS).model)
    expect(elements(state, 'endpoints').map((e) => e.replace(/ comment "[^"]*"/, ''))).to.deep.equal([
      '198.18.0.11 . tcp . 2222 : 198.19.100.20 . 22',
      '198.18.0.11 . tcp . 53 : 198.19.100.20 . 5353',
      '198.18.0.11 . tcp . 8443 : 198.19.100.20 . 8443',
      '198.18.0.11 . udp . 53 : 198.19.100.20 . 5353',
      '198.18.0.12 . tcp . 2222 : 198.19.100.20 . 22',
      '198.18.0.12 . tcp . 53 : 198.19.100.20 . 5353',
      '198.18.0.12 . tcp . 8443 : 198.19.100.20 . 8443',
      '198.18.0.12 . udp . 53 : 198.19.100.20 . 5353',
    ])
    const flow = (src: string, dst: string, protocol: 'tcp' | 'udp', port: number) => {
      const trace = traceNftPacket(state, {src, dst, protocol, port, inInterface: 'eth1'})
      return trace.verdict === 'dnat' ? `dnat ${trace.to}` : trace.verdict
    }
    expect(flow('198.18.100.77', '198.18.0.11', 'tcp', 2222)).to.equal('dnat 198.19.100.20:22')
    expect(flow('198.18.200.7', '198.18.0.12', 'udp', 53)).to.equal('dnat 198.19.100.20:5353')
    expect(flow('198.18.200.8', '198.18.0.12', 'udp', 53)).to.equal('drop')
    expect(flow('198.18.100.77', '198.18.0.10', 'tcp', 2222)).to.equal('not-ours')
  })
})
