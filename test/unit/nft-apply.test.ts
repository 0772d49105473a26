import {expect} from 'chai'
import {CommandError, type RunResult} from '../../src/lib/host/runner.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'
import {ApplyError} from '../../src/lib/backend/result.js'
import {applyNftables, failedNftLine} from '../../src/lib/backend/nftables/apply.js'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {flushNftables} from '../../src/lib/backend/nftables/flush.js'
import {parseNftJson} from '../../src/lib/backend/nftables/parse.js'
import {readNftState} from '../../src/lib/backend/nftables/read.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {elementParts, printElement, printRule, type ElementParts} from '../../src/lib/backend/nftables/syntax.js'
import type {NftState} from '../../src/lib/backend/nftables/types.js'
import {cidr, ip, sampleModel} from './nat-model-fixture.js'

/** `nft -j list table ip smartnat` of the sample model's table, captured from a real kernel (nft 1.0.6). */
const SAMPLE_JSON = JSON.stringify({nftables: [
  {"metainfo":{"version":"1.0.6","release_name":"Lester Gooch #5","json_schema_version":1}},
  {"table":{"family":"ip","name":"smartnat","handle":2}},
  {"set":{"family":"ip","name":"allowed_0","table":"smartnat","type":["ipv4_addr","inet_proto","inet_service"],"handle":10,"elem":[{"elem":{"val":{"concat":["198.18.0.10","tcp",80]},"comment":"default/web"}},{"elem":{"val":{"concat":["198.18.2.10","tcp",80]},"comment":"default/web"}},{"elem":{"val":{"concat":["198.18.0.10","tcp",443]},"comment":"default/web"}}]}},
  {"set":{"family":"ip","name":"allowed_24","table":"smartnat","type":["ipv4_addr","inet_proto","inet_service","ipv4_addr"],"handle":11,"elem":[{"elem":{"val":{"concat":["198.18.1.10","tcp",80,"198.18.7.0"]},"comment":"shop/web"}}]}},
  {"set":{"family":"ip","name":"allowed_32","table":"smartnat","type":["ipv4_addr","inet_proto","inet_service","ipv4_addr"],"handle":12,"elem":[{"elem":{"val":{"concat":["198.18.0.10","udp",53,"198.18.5.5"]},"comment":"default/dns"}}]}},
  {"set":{"family":"ip","name":"allowed_8","table":"smartnat","type":["ipv4_addr","inet_proto","inet_service","ipv4_addr"],"handle":13,"elem":[{"elem":{"val":{"concat":["198.18.0.10","udp",53,"10.0.0.0"]},"comment":"default/dns"}}]}},
  {"set":{"family":"ip","name":"egress_2","table":"smartnat","type":"ipv4_addr","handle":14,"elem":[{"elem":{"val":"10.244.1.5","comment":"shop/web"}},{"elem":{"val":"10.244.1.6","comment":"shop/web"}}]}},
  {"map":{"family":"ip","name":"egress_snat","table":"smartnat","type":["ifname","ipv4_addr"],"handle":15,"map":"ipv4_addr","elem":[[{"elem":{"val":{"concat":["eth2","10.244.1.5"]},"comment":"shop/web"}},"198.18.1.10"],[{"elem":{"val":{"concat":["eth2","10.244.1.6"]},"comment":"shop/web"}},"198.18.1.10"]]}},
  {"map":{"family":"ip","name":"endpoints","table":"smartnat","type":["ipv4_addr","inet_proto","inet_service"],"handle":16,"map":"ipv4_addr . inet_service","elem":[[{"elem":{"val":{"concat":["198.18.0.10","udp",53]},"comment":"default/dns udp/53"}},{"concat":["198.19.100.11",53]}],[{"elem":{"val":{"concat":["198.18.0.10","tcp",80]},"comment":"default/web tcp/80"}},{"concat":["198.19.100.10",8080]}],[{"elem":{"val":{"concat":["198.18.1.10","tcp",80]},"comment":"shop/web tcp/80"}},{"concat":["198.19.100.20",80]}],[{"elem":{"val":{"concat":["198.18.2.10","tcp",80]},"comment":"default/web tcp/80"}},{"concat":["198.19.100.10",8080]}],[{"elem":{"val":{"concat":["198.18.0.10","tcp",443]},"comment":"default/web tcp/443"}},{"concat":["198.19.100.10",8443]}]]}},
  {"chain":{"family":"ip","table":"smartnat","name":"mangle_prerouting","handle":1,"type":"filter","hook":"prerouting","prio":-151,"policy":"accept"}},
  {"chain":{"family":"ip","table":"smartnat","name":"nat_prerouting","handle":2,"type":"nat","hook":"prerouting","prio":-101,"policy":"accept"}},
  {"chain":{"family":"ip","table":"smartnat","name":"nat_postrouting","handle":3,"type":"nat","hook":"postrouting","prio":99,"policy":"accept"}},
  {"chain":{"family":"ip","table":"smartnat","name":"input","handle":4,"type":"filter","hook":"input","prio":-1,"policy":"accept"}},
  {"chain":{"family":"ip","table":"smartnat","name":"forward","handle":5,"type":"filter","hook":"forward","prio":-1,"policy":"accept"}},
  {"chain":{"family":"ip","table":"smartnat","name":"nat_allowed","handle":6}},
  {"chain":{"family":"ip","table":"smartnat","name":"restore_mark_1","handle":7}},
  {"chain":{"family":"ip","table":"smartnat","name":"restore_mark_2","handle":8}},
  {"chain":{"family":"ip","table":"smartnat","name":"restore_mark_3","handle":9}},
  {"rule":{"family":"ip","table":"smartnat","chain":"mangle_prerouting","handle":17,"expr":[{"match":{"op":"in","left":{"ct":{"key":"state"}},"right":"new"}},{"match":{"op":"==","left":{"payload":{"protocol":"ip","field":"saddr"}},"right":"@egress_2"}},{"mangle":{"key":{"ct":{"key":"mark"}},"value":{"|":[{"&":[{"ct":{"key":"mark"}},4029677567]},2359296]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"mangle_prerouting","handle":19,"expr":[{"match":{"op":"==","left":{"ct":{"key":"direction"}},"right":"reply"}},{"vmap":{"key":{"&":[{"ct":{"key":"mark"}},267649024]},"data":{"set":[[1048576,{"goto":{"target":"restore_mark_1"}}],[2097152,{"goto":{"target":"restore_mark_2"}}],[3145728,{"goto":{"target":"restore_mark_3"}}]]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"mangle_prerouting","handle":21,"expr":[{"match":{"op":"==","left":{"ct":{"key":"direction"}},"right":"original"}},{"vmap":{"key":{"&":[{"ct":{"key":"mark"}},267649024]},"data":{"set":[[1310720,{"goto":{"target":"restore_mark_1"}}],[2359296,{"goto":{"target":"restore_mark_2"}}],[3407872,{"goto":{"target":"restore_mark_3"}}]]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_prerouting","handle":22,"expr":[{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}},{"payload":{"protocol":"ip","field":"saddr"}}]},"right":"@allowed_32"}},{"goto":{"target":"nat_allowed"}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_prerouting","handle":23,"expr":[{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}},{"&":[{"payload":{"protocol":"ip","field":"saddr"}},"255.255.255.0"]}]},"right":"@allowed_24"}},{"goto":{"target":"nat_allowed"}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_prerouting","handle":24,"expr":[{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}},{"&":[{"payload":{"protocol":"ip","field":"saddr"}},"255.0.0.0"]}]},"right":"@allowed_8"}},{"goto":{"target":"nat_allowed"}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_prerouting","handle":25,"expr":[{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}}]},"right":"@allowed_0"}},{"goto":{"target":"nat_allowed"}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_postrouting","handle":26,"expr":[{"match":{"op":"==","left":{"&":[{"meta":{"key":"mark"}},524288]},"right":524288}},{"masquerade":null}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_postrouting","handle":27,"expr":[{"match":{"op":"==","left":{"&":[{"ct":{"key":"mark"}},262144]},"right":262144}},{"snat":{"addr":{"map":{"key":{"concat":[{"meta":{"key":"oifname"}},{"payload":{"protocol":"ip","field":"saddr"}}]},"data":"@egress_snat"}}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"input","handle":28,"expr":[{"match":{"op":"==","left":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}}]},"right":"@endpoints"}},{"drop":null}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"forward","handle":29,"expr":[{"match":{"op":"!=","left":{"&":[{"ct":{"key":"mark"}},267386880]},"right":0}},{"accept":null}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_allowed","handle":30,"expr":[{"mangle":{"key":{"meta":{"key":"mark"}},"value":{"|":[{"meta":{"key":"mark"}},524288]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_allowed","handle":31,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"eth1"}},{"mangle":{"key":{"ct":{"key":"mark"}},"value":{"|":[{"&":[{"ct":{"key":"mark"}},4028366847]},1048576]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_allowed","handle":32,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"eth2"}},{"mangle":{"key":{"ct":{"key":"mark"}},"value":{"|":[{"&":[{"ct":{"key":"mark"}},4029415423]},2097152]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_allowed","handle":33,"expr":[{"match":{"op":"==","left":{"meta":{"key":"iifname"}},"right":"eth3"}},{"mangle":{"key":{"ct":{"key":"mark"}},"value":{"|":[{"&":[{"ct":{"key":"mark"}},4030463999]},3145728]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"nat_allowed","handle":34,"expr":[{"dnat":{"family":"ip","addr":{"map":{"key":{"concat":[{"payload":{"protocol":"ip","field":"daddr"}},{"meta":{"key":"l4proto"}},{"payload":{"protocol":"th","field":"dport"}}]},"data":"@endpoints"}}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"restore_mark_1","handle":35,"expr":[{"mangle":{"key":{"meta":{"key":"mark"}},"value":{"|":[{"&":[{"meta":{"key":"mark"}},4028628991]},1048576]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"restore_mark_2","handle":36,"expr":[{"mangle":{"key":{"meta":{"key":"mark"}},"value":{"|":[{"&":[{"meta":{"key":"mark"}},4029677567]},2097152]}}}]}},
  {"rule":{"family":"ip","table":"smartnat","chain":"restore_mark_3","handle":37,"expr":[{"mangle":{"key":{"meta":{"key":"mark"}},"value":{"|":[{"&":[{"meta":{"key":"mark"}},4030726143]},3145728]}}}]}},
]})

/** `ip -4 -j rule show` and `ip -4 -j route show table all` as ip prints them for the sample model (plus the main table's). */
const IP_RULE_JSON = JSON.stringify([
  {priority: 0, src: 'all', table: 'local'},
  {priority: 7001, src: 'all', fwmark: '0x100000', fwmask: '0xff00000', table: '7001'},
  {priority: 7002, src: 'all', fwmark: '0x200000', fwmask: '0xff00000', table: '7002'},
  {priority: 32766, src: 'all', table: 'main'},
])
const IP_ROUTE_JSON = JSON.stringify([
  {dst: 'default', gateway: '198.18.0.1', dev: 'eth1', table: '7001', flags: []},
  {dst: '198.18.0.0/24', dev: 'eth1', table: '7001', scope: 'link', prefsrc: '198.18.0.10', flags: []},
  {dst: 'default', gateway: '198.18.1.254', dev: 'eth2', table: '7002', flags: []},
  {dst: '198.18.1.0/24', dev: 'eth2', table: '7002', scope: 'link', prefsrc: '198.18.1.10', flags: []},
  {dst: '198.18.3.0/25', dev: 'eth2', table: '7002', scope: 'link', prefsrc: '198.18.3.5', flags: []},
  {dst: '198.18.0.0/24', dev: 'eth1', protocol: 'kernel', scope: 'link', prefsrc: '198.18.0.10', flags: []},
])

const NFT_READ = 'nft -j list table ip smartnat'
const READS = [NFT_READ, 'ip -4 -j rule show', 'ip -4 -j route show table all']
const NO_TABLE: Partial<RunResult> = {exitCode: 1, stderr: 'Error: No such file or directory\nlist table ip smartnat\n              ^^^^^^^^\n'}

/** A kernel holding the captured table (or none) and the sample's routing, accepting (or, per `writes`, refusing) writes. */
function fakeKernel(options: {table?: string; noRouting?: boolean; writes?: (call: RecordedCall) => Partial<RunResult> | Error} = {}): RecordingRunner {
  return new RecordingRunner((call) => {
    const line = [call.command, ...call.args].join(' ')
    if (line === NFT_READ) return options.table === undefined ? {stdout: SAMPLE_JSON} : options.table === '' ? NO_TABLE : {stdout: options.table}
    if (line === 'ip -4 -j rule show') return {stdout: options.noRouting ? '[]' : IP_RULE_JSON}
    if (line === 'ip -4 -j route show table all') return {stdout: options.noRouting ? '[]' : IP_ROUTE_JSON}
    return options.writes?.(call) ?? {}
  })
}

/** Flush also reads iptables' FORWARD, for the nftables backend's accept there. */
const FLUSH_READS = [...READS, 'iptables-save -t filter']

function writesOf(runner: RecordingRunner): RecordedCall[] {
  return runner.calls.filter((c) => !FLUSH_READS.includes([c.command, ...c.args].join(' ')))
}

function desired(edit: (state: NftState) => void = () => {}): NftState {
  const state = renderNftables(sampleModel())
  edit(state)
  return state
}

function endpoints(state: NftState) {
  return state.table!.sets.find((s) => s.name === 'endpoints')!
}

/** The endpoints map's elements as parts. */
function endpointParts(state: NftState): ElementParts[] {
  const set = endpoints(state)
  return set.elements.map((element) => elementParts(set, element))
}

/** The endpoints map with its elements put together from `parts`. */
function setEndpoints(state: NftState, parts: ElementParts[]): void {
  const set = endpoints(state)
  set.elements = parts.map((p) => printElement(set, p))
}

describe('nftables backend: read', () => {
  it('parses the captured table into exactly the rendered one', () => {
    expect(parseNftJson(SAMPLE_JSON)).to.deep.equal(renderNftables(sampleModel()).table)
  })

  it('reads the table, ip rules and routes as the renderer would write them', async () => {
    expect(await readNftState(fakeKernel())).to.deep.equal(renderNftables(sampleModel()))
  })

  it('reads a missing table as no table, not as an error', async () => {
    const state = await readNftState(fakeKernel({table: '', noRouting: true}))
    expect(state).to.deep.equal({ipRules: [], routes: []})
  })

  it('does not take another nft failure for a missing table', async () => {
    const runner = new RecordingRunner(() => ({exitCode: 1, stderr: 'Error: Operation not permitted'}))
    await readNftState(runner).then(
      () => expect.fail('read succeeded'),
      (error: Error) => expect(error.message).to.match(/nft -j list table ip smartnat exited with 1: Error: Operation not permitted/),
    )
  })

  it('keeps a rule of a shape smartnat does not render as unknown, so it reads as different', () => {
    const json = SAMPLE_JSON.replace('{"accept":null}', '{"counter":{"packets":0,"bytes":0}},{"accept":null}')
    const forward = parseNftJson(json).chains.find((c) => c.name === 'forward')!
    expect(forward.rules).to.have.length(1)
    expect(forward.rules[0]).to.have.property('unknown').that.includes('"counter"')
  })

  it('reads a masked source only on ip saddr, and a goto only with its target', () => {
    const masked = '{"&":[{"payload":{"protocol":"ip","field":"saddr"}},"255.255.255.0"]}'
    expect(SAMPLE_JSON).to.include(masked)
    const onDaddr = parseNftJson(SAMPLE_JSON.replace(masked, masked.replace('saddr', 'daddr'))).chains.find((c) => c.name === 'nat_prerouting')!
    expect(onDaddr.rules.filter((r) => 'unknown' in r)).to.have.length(1)
    const gotoBody = '{"goto":{"target":"nat_allowed"}}'
    expect(SAMPLE_JSON).to.include(gotoBody)
    const extra = parseNftJson(SAMPLE_JSON.replace(gotoBody, '{"goto":{"target":"nat_allowed","x":1}}')).chains.find((c) => c.name === 'nat_prerouting')!
    expect(extra.rules.filter((r) => 'unknown' in r)).to.have.length(1)
  })

  it('ignores objects of other tables in the listing', () => {
    const json = SAMPLE_JSON.replace(
      '{"table":{"family":"ip","name":"smartnat"',
      '{"chain":{"family":"ip","table":"filter","name":"FORWARD","handle":1,"type":"filter","hook":"forward","prio":0,"policy":"drop"}},{"table":{"family":"ip","name":"smartnat"',
    )
    expect(parseNftJson(json)).to.deep.equal(renderNftables(sampleModel()).table)
  })
})

describe('nftables backend: apply', () => {
  it('writes nothing when the kernel already matches', async () => {
    const runner = fakeKernel()
    const result = await applyNftables(runner, desired())
    expect(result).to.deep.equal({changed: false, written: {sets: 0, chains: 0, rules: 0, routes: 0}, changedEndpoints: []})
    expect(writesOf(runner)).to.deep.equal([])
  })

  it('changes only elements, in one transaction, when only a DNAT target changed', async () => {
    const runner = fakeKernel()
    const result = await applyNftables(runner, desired((s) => {
      setEndpoints(s, endpointParts(s).map((e) => (e.key.join(' ') === '198.18.0.10 tcp 80' ? {...e, value: ['198.19.100.99', '8080']} : e)))
    }))
    expect(writesOf(runner)).to.deep.equal([
      {
        command: 'nft',
        args: ['-f', '-'],
        input:
          'delete element ip smartnat endpoints { 198.18.0.10 . tcp . 80 }\n' +
          'add element ip smartnat endpoints { 198.18.0.10 . tcp . 80 comment "default/web tcp/80" : 198.19.100.99 . 8080 }\n',
      },
    ])
    expect(result.written).to.deep.equal({sets: 1, chains: 0, rules: 0, routes: 0})
    expect(result.changedEndpoints).to.deep.equal([{address: '198.18.0.10', protocol: 'tcp', port: 80, oldTarget: '198.19.100.10:8080'}])
  })

  it('adds a new Mapping as elements of the endpoints map and an allowed set (a nested source prefix folded in)', async () => {
    const model = sampleModel()
    model.mappings.push({
      namespace: 'zoo',
      name: 'ssh',
      addresses: [{address: ip('198.18.1.10'), interface: 'eth2'}],
      allowedSources: [cidr('198.18.9.128/25'), cidr('198.18.9.0/24')],
      serviceVIP: ip('198.19.100.30'),
      podIPs: [],
      endpoints: [{address: ip('198.18.1.10'), protocol: 'tcp', port: 2222, targetIP: ip('198.19.100.30'), targetPort: 22}],
    })
    const runner = fakeKernel()
    const result = await applyNftables(runner, renderNftables(model))
    expect(writesOf(runner).map((c) => c.input)).to.deep.equal([
      'add element ip smartnat allowed_24 { 198.18.1.10 . tcp . 2222 . 198.18.9.0 comment "zoo/ssh" }\n' +
        'add element ip smartnat endpoints { 198.18.1.10 . tcp . 2222 comment "zoo/ssh tcp/2222" : 198.19.100.30 . 22 }\n',
    ])
    expect(result.changedEndpoints).to.deep.equal([])
  })

  it('refills a chain whose rules changed, in one transaction, keeping the table', async () => {
    const runner = fakeKernel()
    const state = renderNftables(sampleModel({masquerade: false}))
    const result = await applyNftables(runner, state)
    const [write, ...rest] = writesOf(runner)
    expect(rest).to.deep.equal([])
    const lines = write!.input!.split('\n').filter(Boolean)
    expect(lines.filter((l) => !l.startsWith('add rule '))).to.have.members(['flush chain ip smartnat nat_allowed', 'flush chain ip smartnat nat_postrouting'])
    expect(write!.input).not.to.include('masquerade')
    expect(result.written).to.deep.equal({sets: 0, chains: 2, rules: lines.length - 2, routes: 0})
  })

  it('replaces the whole table atomically when a chain is added or goes', async () => {
    const runner = fakeKernel()
    await applyNftables(runner, desired((s) => s.table!.chains.push({name: 'extra', rules: []})))
    const [write, ...rest] = writesOf(runner)
    expect(rest).to.deep.equal([])
    expect(write!.input!.split('\n').slice(0, 4)).to.deep.equal(['table ip smartnat', 'delete table ip smartnat', 'table ip smartnat {', '\tset allowed_0 {'])
  })

  describe('a Mapping whose allowed sources have a prefix length no other has', () => {
    function withWideSource() {
      const model = sampleModel()
      model.mappings.push({
        namespace: 'zoo',
        name: 'wide',
        addresses: [{address: ip('198.18.1.10'), interface: 'eth2'}],
        allowedSources: [cidr('198.18.16.0/20')],
        serviceVIP: ip('198.19.100.30'),
        podIPs: [],
        endpoints: [{address: ip('198.18.1.10'), protocol: 'tcp', port: 2222, targetIP: ip('198.19.100.30'), targetPort: 22}],
      })
      return renderNftables(model)
    }
    const prerouting = (state: NftState) => state.table!.chains.find((c) => c.name === 'nat_prerouting')!.rules.map((r) => `add rule ip smartnat nat_prerouting ${printRule(r)}`)

    it('adds its allow-list set and the lookup of it in one transaction, keeping the table', async () => {
      const runner = fakeKernel()
      const next = withWideSource()
      const result = await applyNftables(runner, next)
      expect(writesOf(runner).map((c) => c.input!.split('\n').filter(Boolean))).to.deep.equal([
        [
          'add set ip smartnat allowed_20 { type ipv4_addr . inet_proto . inet_service . ipv4_addr; }',
          'flush chain ip smartnat nat_prerouting',
          ...prerouting(next),
          'add element ip smartnat allowed_20 { 198.18.1.10 . tcp . 2222 . 198.18.16.0 comment "zoo/wide" }',
          'add element ip smartnat endpoints { 198.18.1.10 . tcp . 2222 comment "zoo/wide tcp/2222" : 198.19.100.30 . 22 }',
        ],
      ])
      expect(prerouting(next).join('\n')).to.include('@allowed_20')
      expect(result.written).to.deep.equal({sets: 2, chains: 1, rules: prerouting(next).length, routes: 0})
    })

    it('deletes that set once its lookup is gone, when the Mapping goes', async () => {
      const runner = fakeKernel()
      const result = await applyNftables(runner, desired(), {assumeActual: withWideSource()})
      expect(writesOf(runner).map((c) => c.input!.split('\n').filter(Boolean))).to.deep.equal([
        [
          'delete element ip smartnat endpoints { 198.18.1.10 . tcp . 2222 }',
          'flush chain ip smartnat nat_prerouting',
          ...prerouting(desired()),
          'delete set ip smartnat allowed_20',
        ],
      ])
      expect(result.written.sets).to.equal(2)
    })

    it('replaces the table when a set that stays is declared otherwise', async () => {
      const runner = fakeKernel()
      await applyNftables(runner, desired((s) => (s.table!.sets.find((set) => set.name === 'allowed_24')!.keyType = ['ipv4_addr'])))
      expect(writesOf(runner).map((c) => c.input!.split('\n')[1])).to.deep.equal(['delete table ip smartnat'])
    })
  })

  it('replaces the table when it is missing, and adds the ip rules and routes', async () => {
    const runner = fakeKernel({table: '', noRouting: true})
    const result = await applyNftables(runner, desired())
    const writes = writesOf(runner)
    expect(writes.map((c) => [c.command, ...c.args].join(' '))).to.deep.equal(['nft -f -', 'ip -batch -'])
    expect(writes[1]!.input).to.equal(
      [
        'route replace 198.18.0.0/24 dev eth1 scope link src 198.18.0.10 table 7001',
        'route replace default via 198.18.0.1 dev eth1 table 7001',
        'route replace 198.18.1.0/24 dev eth2 scope link src 198.18.1.10 table 7002',
        'route replace 198.18.3.0/25 dev eth2 scope link src 198.18.3.5 table 7002',
        'route replace default via 198.18.1.254 dev eth2 table 7002',
        'rule add priority 7001 fwmark 0x100000/0xff00000 table 7001',
        'rule add priority 7002 fwmark 0x200000/0xff00000 table 7002',
        '',
      ].join('\n'),
    )
    expect(result.written).to.deep.equal({sets: 7, chains: 9, rules: 19, routes: 7})
  })

  it('replaces the table on a full apply even when it matches', async () => {
    const runner = fakeKernel()
    await applyNftables(runner, desired(), {full: true})
    expect(writesOf(runner).map((c) => c.input!.split('\n')[1])).to.deep.equal(['delete table ip smartnat'])
  })

  it('trusts the state it is given instead of reading the kernel, and writes only the changed elements', async () => {
    const runner = fakeKernel()
    const changed = desired((s) => {
      setEndpoints(s, endpointParts(s).filter((e) => e.key.join(' ') !== '198.18.0.10 tcp 80'))
    })
    const result = await applyNftables(runner, changed, {assumeActual: desired()})
    expect(runner.calls.map((c) => [c.command, ...c.args].join(' '))).to.deep.equal(['nft -f -'])
    expect(runner.calls[0]!.input).to.equal('delete element ip smartnat endpoints { 198.18.0.10 . tcp . 80 }\n')
    expect(result.changedEndpoints).to.deep.equal([{address: '198.18.0.10', protocol: 'tcp', port: 80, oldTarget: '198.19.100.10:8080'}])
  })

  it('runs nothing at all when the desired state equals the trusted one', async () => {
    const runner = fakeKernel()
    expect((await applyNftables(runner, desired(), {assumeActual: desired()})).changed).to.equal(false)
    expect(runner.calls).to.deep.equal([])
  })

  it('finds a changed element among many equal ones, in the middle or at either end', async () => {
    const model = sampleModel()
    const template = model.mappings[0]!
    for (let i = 0; i < 300; i++) {
      const address = ip(`198.18.0.${10 + (i % 3)}`)
      model.mappings.push({
        ...template,
        name: `m${String(i).padStart(3, '0')}`,
        addresses: [{address, interface: 'eth1'}],
        endpoints: [{address, protocol: 'tcp', port: 20000 + i, targetIP: ip('198.19.100.50'), targetPort: 80}],
      })
    }
    const base = renderNftables(model)
    for (const port of ['20000', '20150', '20299']) {
      const edited = structuredClone(base)
      const element = endpointParts(edited).find((e) => e.key[2] === port)!
      setEndpoints(edited, endpointParts(edited).map((e) => (e.key[2] === port ? {...e, value: ['198.19.100.51', '80']} : e)))
      const runner = fakeKernel()
      await applyNftables(runner, edited, {assumeActual: base})
      const address = element.key[0]
      expect(runner.calls.map((c) => c.input), port).to.deep.equal([
        `delete element ip smartnat endpoints { ${address} . tcp . ${port} }\n` +
          `add element ip smartnat endpoints { ${address} . tcp . ${port} comment "${element.comment}" : 198.19.100.51 . 80 }\n`,
      ])
    }
  })

  it('reads the kernel for a full apply even when given a state to trust', async () => {
    const runner = fakeKernel()
    await applyNftables(runner, desired(), {full: true, assumeActual: desired()})
    expect(runner.calls.map((c) => [c.command, ...c.args].join(' ')).filter((c) => READS.includes(c)).sort()).to.deep.equal([...READS].sort())
  })

  it('diffs against a read the caller started instead of reading the kernel again', async () => {
    const runner = fakeKernel()
    const result = await applyNftables(runner, desired(), {full: true, kernelRead: Promise.resolve(desired())})
    expect(runner.calls.map((c) => [c.command, ...c.args].join(' ')).filter((c) => READS.includes(c))).to.deep.equal([])
    expect(result.changed).to.equal(true)
  })

  it('fails the read step when the read the caller started failed', async () => {
    const runner = fakeKernel()
    const error = await applyNftables(runner, desired(), {kernelRead: Promise.reject(new Error('reading kernel state: nft failed'))}).then(
      () => expect.fail('apply succeeded'),
      (e: unknown) => e as ApplyError,
    )
    expect(error.message).to.equal('read: reading kernel state: nft failed')
    expect(runner.calls).to.deep.equal([])
  })

  it('reports the line nft failed on with its neighbours, and asks for a full apply next', async () => {
    const stderr = '/dev/stdin:2:50-53: Error: Could not resolve protocol name\nadd element ...\n      ^^^^\n'
    const runner = fakeKernel({writes: () => new CommandError('nft', ['-f', '-'], 1, stderr)})
    const state = desired((s) => {
      setEndpoints(s, [...endpointParts(s), {key: ['198.18.0.10', 'tcp', '81'], value: ['198.19.100.10', '81']}, {key: ['198.18.0.10', 'tcp', '82'], value: ['198.19.100.10', '82']}])
    })
    const error = await applyNftables(runner, state).then(
      () => expect.fail('apply succeeded'),
      (e: unknown) => e as ApplyError,
    )
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.forceFull).to.equal(true)
    expect(error.message).to.include('nft: nft failed at payload line 2: "add element ip smartnat endpoints { 198.18.0.10 . tcp . 82 : 198.19.100.10 . 82 }"')
    expect(error.message).to.include('>    2: add element ip smartnat endpoints { 198.18.0.10 . tcp . 82')
    expect(error.message).to.include('Could not resolve protocol name')
  })

  it('reads nft\'s failing line number', () => {
    expect(failedNftLine('/dev/stdin:17:35-70: Error: Could not process rule: File exists')).to.equal(17)
    expect(failedNftLine('Error: syntax error')).to.equal(undefined)
  })
})

describe('nftables backend: flush', () => {
  it('deletes the table and smartnat\'s ip rules and routes, and nothing else', async () => {
    const runner = fakeKernel()
    const report = await flushNftables(runner, {dryRun: false})
    expect(report.changed).to.equal(true)
    expect(report.removed.chains).to.include('ip smartnat: nat_prerouting')
    expect(report.removed.ipRules).to.deep.equal(['priority 7001 fwmark 0x100000/0xff00000 table 7001', 'priority 7002 fwmark 0x200000/0xff00000 table 7002'])
    const writes = writesOf(runner)
    expect(writes[0]).to.deep.equal({command: 'nft', args: ['-f', '-'], input: 'table ip smartnat\ndelete table ip smartnat\n'})
    expect(writes[1]!.input).to.include('rule del priority 7001 fwmark 0x100000/0xff00000 table 7001')
    expect(writes[1]!.input).not.to.include('table main')
  })

  it('writes nothing in a dry run', async () => {
    const runner = fakeKernel()
    const report = await flushNftables(runner, {dryRun: true})
    expect(report.changed).to.equal(true)
    expect(writesOf(runner)).to.deep.equal([])
  })

  it('finds nothing and writes nothing when there is nothing of smartnat\'s', async () => {
    const runner = fakeKernel({table: '', noRouting: true})
    const report = await nftablesBackend(runner).flush({dryRun: false})
    expect(report).to.deep.equal({dryRun: false, changed: false, removed: {jumps: [], chains: [], sets: [], ipRules: [], routes: []}})
    expect(writesOf(runner)).to.deep.equal([])
  })
})
