/** The nftables backend in mode direct: what it renders, reads back, and writes for a change. */
import {expect} from 'chai'
import {applyNftables} from '../../src/lib/backend/nftables/apply.js'
import {diffNftState} from '../../src/lib/backend/nftables/diff.js'
import {nftMappings} from '../../src/lib/backend/nftables/mappings.js'
import {affinitySetName, groupChainName, memberChainName} from '../../src/lib/backend/nftables/names.js'
import {parseNftJson} from '../../src/lib/backend/nftables/parse.js'
import {readNftState} from '../../src/lib/backend/nftables/read.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {printRule, renderNftScript} from '../../src/lib/backend/nftables/syntax.js'
import type {NftState} from '../../src/lib/backend/nftables/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import type {NatGroup, NatModel} from '../../src/lib/plan/model.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {directModel, group, manyDirectModel} from './direct-model-fixture.js'
import {DIRECT_JSON} from './fixtures/nft-direct-capture.js'
import {ip, sampleModel} from './nat-model-fixture.js'

const TCP80 = group('shop/api tcp/80', ['10.244.2.1:8080', '10.244.2.2:8080', '10.244.2.3:8080'])
const UDP53 = group('shop/api udp/53', ['10.244.2.1:5353', '10.244.2.2:5353'], 300)

function elements(state: NftState, name: string): string[] {
  const set = state.table!.sets.find((s) => s.name === name)!
  return set.elements
}

function chain(state: NftState, name: string): string[] {
  const found = state.table!.chains.find((c) => c.name === name)
  if (!found) throw new Error(`no chain ${name}`)
  return found.rules.map(printRule)
}

const member = (g: NatGroup, i: number) => memberChainName(g.id, g.members[i]!)
const affinity = (g: NatGroup, i: number) => affinitySetName(g.id, g.members[i]!, g.affinitySeconds!)

/** Replaces the group `id` of every endpoint leading to it. */
function regroup(model: NatModel, id: string, members: string[], affinitySeconds?: number): NatGroup {
  const next = group(id, members, affinitySeconds)
  for (const mapping of model.mappings) {
    for (const e of mapping.endpoints) if (e.group?.id === id) e.group = next
    if (mapping.groups) mapping.groups = mapping.groups.map((g) => (g.id === id ? next : g))
  }
  return next
}

describe('renderNftables in mode direct', () => {
  const state = renderNftables(directModel())

  it('sends each served direct endpoint to the pick chain of its group\'s size, or to its group\'s chain with affinity', () => {
    expect(elements(state, 'direct')).to.deep.equal([
      '198.18.0.10 . tcp . 8080 comment "shop/api tcp/8080" : goto pick_3',
      `198.18.0.10 . udp . 5353 comment "shop/api udp/5353" : goto ${groupChainName('shop/api udp/53')}`,
      '198.18.2.10 . tcp . 8080 comment "shop/api tcp/8080" : goto pick_3',
    ])
    expect(elements(state, 'direct_endpoints')).to.deep.equal([
      '198.18.0.10 . tcp . 8080 comment "shop/api tcp/8080"',
      '198.18.0.10 . tcp . 9000 comment "shop/api tcp/9000"',
      '198.18.0.10 . udp . 5353 comment "shop/api udp/5353"',
      '198.18.0.10 . udp . 9000 comment "shop/api udp/9000"',
      '198.18.2.10 . tcp . 8080 comment "shop/api tcp/8080"',
    ])
    expect(elements(state, 'unserved')).to.deep.equal(['198.18.0.10 . tcp . 9000 comment "shop/api tcp/9000"', '198.18.0.10 . udp . 9000 comment "shop/api udp/9000"'])
    expect(elements(state, 'endpoints').join('\n')).not.to.include('shop/api')
    expect(elements(state, 'allowed_24')).to.include('198.18.0.10 . udp . 5353 . 203.0.113.0 comment "shop/api"')
  })

  it('holds each endpoint\'s members in slots 0..N-1 of targets, in the group\'s order, for every address leading to the group', () => {
    expect(elements(state, 'targets')).to.deep.equal(
      ['198.18.0.10', '198.18.2.10'].flatMap((address) =>
        [0, 1, 2].map((slot) => `${address} . tcp . 8080 . ${slot} comment "shop/api tcp/8080" : 10.244.2.${slot + 1} . 8080`),
      ).sort(),
    )
    const targets = state.table!.sets.find((s) => s.name === 'targets')!
    expect([targets.keyType, targets.dataType]).to.deep.equal([['ipv4_addr', 'inet_proto', 'inet_service', 'integer'], ['ipv4_addr', 'inet_service']])
    expect(chain(state, 'pick_3')).to.deep.equal(['dnat to ip daddr . meta l4proto . th dport . numgen random mod 3 map @targets'])
  })

  it('gives a group without affinity no chain of its own, nor its members; an empty group none at all', () => {
    const names = state.table!.chains.map((c) => c.name)
    for (const name of [groupChainName(TCP80.id), member(TCP80, 0), groupChainName('shop/api tcp/9000')]) expect(names).not.to.include(name)
    expect(names.filter((name) => !name.startsWith('pick_')).slice(-3)).to.deep.equal([groupChainName(UDP53.id), member(UDP53, 0), member(UDP53, 1)].sort())
  })

  it('with affinity, picks a member at random after the members\' affinity sets; each member chain DNATs to its pod', () => {
    expect(chain(state, groupChainName(UDP53.id))).to.deep.equal([
      `ip saddr @${affinity(UDP53, 0)} goto ${member(UDP53, 0)}`,
      `ip saddr @${affinity(UDP53, 1)} goto ${member(UDP53, 1)}`,
      `numgen random mod 2 vmap { 0 : goto ${member(UDP53, 0)}, 1 : goto ${member(UDP53, 1)} }`,
    ])
    expect(chain(state, member(UDP53, 0))).to.deep.equal([`update @${affinity(UDP53, 0)} { ip saddr }`, 'meta l4proto udp dnat to 10.244.2.1:5353'])
    const set = state.table!.sets.find((s) => s.name === affinity(UDP53, 0))!
    expect(set).to.deep.equal({name: affinity(UDP53, 0), keyType: ['ipv4_addr'], flags: ['dynamic', 'timeout'], timeout: 300, elements: []})
  })

  it('refuses an allowed connection to an empty group in input, drops a disallowed one, and dispatches before the DNAT map', () => {
    expect(chain(state, 'input')).to.deep.equal([
      'ct mark & 0x0ff00000 != 0x00000000 ip daddr . meta l4proto . th dport @unserved meta l4proto tcp reject with tcp reset',
      'ct mark & 0x0ff00000 != 0x00000000 ip daddr . meta l4proto . th dport @unserved meta l4proto udp reject',
      'ip daddr . meta l4proto . th dport @endpoints drop',
      'ip daddr . meta l4proto . th dport @direct_endpoints drop',
    ])
    expect(chain(state, 'nat_allowed').slice(-2)).to.deep.equal(['ip daddr . meta l4proto . th dport vmap @direct', 'dnat to ip daddr . meta l4proto . th dport map @endpoints'])
  })

  it('gives the host\'s own refusals their connection\'s interface bits in a route chain on output, as mangle_prerouting gives replies', () => {
    const output = state.table!.chains.find((c) => c.name === 'mangle_output')!
    expect(output.base).to.deep.equal({type: 'route', hook: 'output', priority: -151})
    const reply = 'ct direction reply ct mark & 0x0ff40000 vmap { 0x00100000 : goto restore_mark_1, 0x00200000 : goto restore_mark_2, 0x00300000 : goto restore_mark_3 }'
    expect(chain(state, 'mangle_output')).to.deep.equal([reply])
    expect(chain(state, 'mangle_prerouting')).to.include(reply)
    expect(renderNftScript(state)).to.include(`\tchain mangle_output {\n\t\ttype route hook output priority -151; policy accept;\n\t\t${reply}\n\t}`)
  })

  it('keeps a table without direct Mappings as it was: no direct sets, rules or chains', () => {
    const service = renderNftables(sampleModel())
    expect(service.table!.sets.map((s) => s.name)).to.deep.equal(['allowed_0', 'allowed_24', 'allowed_32', 'allowed_8', 'egress_2', 'egress_snat', 'endpoints'])
    expect(service.table!.chains.filter((c) => c.base).map((c) => c.name)).to.deep.equal(['mangle_prerouting', 'nat_prerouting', 'nat_postrouting', 'input', 'forward'])
    expect(chain(service, 'input')).to.deep.equal(['ip daddr . meta l4proto . th dport @endpoints drop'])
    expect(chain(service, 'nat_allowed').at(-2)).to.equal('iifname "eth3" ct mark set ct mark & 0xf03bffff | 0x00300000')
    const withoutDirect = directModel()
    withoutDirect.mappings = withoutDirect.mappings.filter((m) => m.name !== 'api')
    expect(renderNftables(withoutDirect)).to.deep.equal(service)
  })

  const refusals: [string, (m: NatModel) => void, RegExp][] = [
    [
      'a member address in another spelling',
      (m) => (regroup(m, TCP80.id, ['10.244.2.1:8080']).members[0]!.ip = '10.244.2.01' as Ipv4),
      /mapping shop\/api: "10\.244\.2\.01" is not an IPv4 address in canonical form/,
    ],
    ['a member port of 0', (m) => regroup(m, TCP80.id, ['10.244.2.1:0']), /mapping shop\/api: port 8080 -> 0 is outside 1\.\.65535/],
    ['an affinity of 0 seconds', (m) => regroup(m, TCP80.id, ['10.244.2.1:80'], 0), /mapping shop\/api: affinity timeout 0 is outside 1\.\.86400 seconds/],
    ['an affinity longer than a day', (m) => regroup(m, TCP80.id, ['10.244.2.1:80'], 86401), /affinity timeout 86401 is outside/],
    [
      'a group its endpoints tell two ways',
      (m) => {
        m.mappings.find((x) => x.name === 'api')!.endpoints.at(-1)!.group = group(TCP80.id, ['10.244.2.9:80'])
      },
      /mapping shop\/api: group "shop\/api tcp\/80" differs between the endpoints leading to it/,
    ],
    [
      'a group two Mappings claim',
      (m) => {
        const api = m.mappings.find((x) => x.name === 'api')!
        m.mappings.push({...structuredClone(api), name: 'api2', endpoints: [{address: ip('198.18.1.10'), protocol: 'tcp', port: 8080, group: TCP80}]})
      },
      /mapping shop\/api2: group "shop\/api tcp\/80" is also the group of shop\/api/,
    ],
  ]
  for (const [name, edit, error] of refusals) {
    it(`refuses ${name}`, () => {
      const model = directModel()
      edit(model)
      expect(() => renderNftables(model)).to.throw(error)
    })
  }
})

describe('nftables backend reads mode direct back', () => {
  it('counts a direct Mapping as programmed by its direct endpoints, also when every group is empty', () => {
    expect([...nftMappings(renderNftables(directModel()))].sort()).to.deep.equal(['default/dns', 'default/web', 'shop/api', 'shop/web'])
    const empty = directModel()
    for (const g of empty.mappings.find((m) => m.name === 'api')!.groups!) regroup(empty, g.id, [])
    expect(elements(renderNftables(empty), 'direct')).to.deep.equal([])
    expect([...nftMappings(renderNftables(empty))].sort()).to.deep.equal(['default/dns', 'default/web', 'shop/api', 'shop/web'])
  })

  it('parses the captured table into exactly the rendered one, ignoring the clients in affinity sets', () => {
    expect(DIRECT_JSON).to.match(/"elem":\[\{"elem":\{"val":"203\.0\.113\.5","expires":\d+\}\}\]/)
    expect(DIRECT_JSON).to.include('"type":["ipv4_addr","inet_proto","inet_service","integer"]')
    expect(parseNftJson(DIRECT_JSON)).to.deep.equal(renderNftables(directModel()).table)
  })

  it('lists group and member chains last, by name, in whatever order nft lists them', () => {
    const json = JSON.parse(DIRECT_JSON) as {nftables: Record<string, {name?: string}>[]}
    const isDirect = (item: Record<string, {name?: string}>) => /^(group|member)_/.test(item.chain?.name ?? '')
    const chains = json.nftables.filter((item) => 'chain' in item)
    const rules = json.nftables.filter((item) => 'rule' in item)
    const rest = json.nftables.filter((item) => !('chain' in item) && !('rule' in item))
    const reordered = [...rest, ...chains.filter(isDirect).reverse(), ...chains.filter((item) => !isDirect(item)), ...rules]
    expect(parseNftJson(JSON.stringify({nftables: reordered}))).to.deep.equal(renderNftables(directModel()).table)
  })

  const unknown: [string, string, string][] = [
    ['a numgen pick with an offset', '"vmap":{"key":{"numgen":{"mode":"random","mod":2,"offset":0}}', '"vmap":{"key":{"numgen":{"mode":"random","mod":2,"offset":1}}'],
    ['a numgen pick whose modulus is not its number of members', '"vmap":{"key":{"numgen":{"mode":"random","mod":2,"offset":0}}', '"vmap":{"key":{"numgen":{"mode":"random","mod":4,"offset":0}}'],
    ['a pick chain\'s slot with an offset', '"mode":"random","mod":3,"offset":0', '"mode":"random","mod":3,"offset":1'],
    ['a pick chain\'s slot numbered in turn', '"mode":"random","mod":3,"offset":0', '"mode":"inc","mod":3,"offset":0'],
    ['a pick chain\'s slot of modulus 0', '"mode":"random","mod":3,"offset":0', '"mode":"random","mod":0,"offset":0'],
    ['a DNAT to port 0', '{"dnat":{"addr":"10.244.2.2","port":5353}}', '{"dnat":{"addr":"10.244.2.2","port":0}}'],
    ['a DNAT with a flag', '{"dnat":{"addr":"10.244.2.2","port":5353}}', '{"dnat":{"addr":"10.244.2.2","port":5353,"flags":["random"]}}'],
    ['a reject of another kind', '{"reject":{"type":"tcp reset"}}', '{"reject":{"type":"icmpx","expr":"admin-prohibited"}}'],
    ['an update of another operation', '"op":"update"', '"op":"add"'],
  ]
  for (const [name, from, to] of unknown) {
    it(`keeps ${name} as a rule of unknown shape`, () => {
      expect(DIRECT_JSON).to.include(from)
      const table = parseNftJson(DIRECT_JSON.replace(from, to))
      expect(table.chains.flatMap((c) => c.rules).filter((r) => 'unknown' in r)).to.have.length(1)
    })
  }
})

/** Desired state without ip rules and routes, so a fake kernel needs none. */
function tableOnly(model: NatModel): NftState {
  return {...renderNftables(model), ipRules: [], routes: []}
}

async function writesFor(before: NatModel, after: NatModel): Promise<{lines: string[]; result: Awaited<ReturnType<typeof applyNftables>>}> {
  const runner = new RecordingRunner()
  const result = await applyNftables(runner, tableOnly(after), {assumeActual: tableOnly(before)})
  expect(runner.calls.map((c) => [c.command, ...c.args].join(' '))).to.deep.equal(result.changed ? ['nft -f -'] : [])
  return {lines: (runner.calls[0]?.input ?? '').split('\n').filter(Boolean), result}
}

describe('nftables backend applies mode direct changes', () => {
  const MANY = 1000
  const base = manyDirectModel(MANY)
  const id = 'direct/m0500 tcp/80'
  const old = base.mappings.find((m) => m.name === 'm0500')!.groups![0]!

  it('reads the captured table as converged: nothing to write, clients in affinity sets kept', async () => {
    const runner = new RecordingRunner((call) => (call.command === 'nft' ? {stdout: DIRECT_JSON} : {stdout: '[]'}))
    expect(await readNftState(runner)).to.deep.equal(tableOnly(directModel()))
    const result = await applyNftables(runner, tableOnly(directModel()))
    expect(result.changed).to.equal(false)
    expect(runner.calls.filter((c) => c.input !== undefined)).to.deep.equal([])
  })

  it(`rewrites one slot of the endpoint's targets, and nothing else, when one member changes among ${MANY} direct Mappings`, async () => {
    const after = structuredClone(base)
    regroup(after, id, ['10.102.0.1:80', '10.102.0.2:80', '10.102.0.9:80'])
    const {lines, result} = await writesFor(base, after)
    expect(lines).to.deep.equal([
      'delete element ip smartnat targets { 198.18.0.10 . tcp . 20500 . 2 }',
      'add element ip smartnat targets { 198.18.0.10 . tcp . 20500 . 2 comment "direct/m0500 tcp/20500" : 10.102.0.9 . 80 }',
    ])
    expect(result.written).to.deep.equal({sets: 1, chains: 0, rules: 0, routes: 0})
    expect(result.changedEndpoints).to.deep.equal([])
  })

  it('sends an endpoint whose group grows to the pick chain of its new size: element writes only, both ways', async () => {
    const grown = structuredClone(base)
    regroup(grown, id, [...old.members.map((m) => `${m.ip}:${m.port}`), '10.102.0.9:80'])
    const {lines} = await writesFor(base, grown)
    expect(lines).to.deep.equal([
      'delete element ip smartnat direct { 198.18.0.10 . tcp . 20500 }',
      'add element ip smartnat direct { 198.18.0.10 . tcp . 20500 comment "direct/m0500 tcp/20500" : goto pick_4 }',
      'add element ip smartnat targets { 198.18.0.10 . tcp . 20500 . 3 comment "direct/m0500 tcp/20500" : 10.102.0.9 . 80 }',
    ])
    const back = await writesFor(grown, base)
    expect(back.lines).to.deep.equal([
      'delete element ip smartnat direct { 198.18.0.10 . tcp . 20500 }',
      'delete element ip smartnat targets { 198.18.0.10 . tcp . 20500 . 3 }',
      'add element ip smartnat direct { 198.18.0.10 . tcp . 20500 comment "direct/m0500 tcp/20500" : goto pick_3 }',
    ])
  })

  it('holds pick_1 to pick_16, and replaces the table when a group outgrows them, up to the next power of two', () => {
    const picks = (state: NftState) => state.table!.chains.filter((c) => c.name.startsWith('pick_')).map((c) => c.name)
    expect(picks(tableOnly(base))).to.deep.equal(Array.from({length: 16}, (_, i) => `pick_${i + 1}`))
    const large = structuredClone(base)
    regroup(large, id, Array.from({length: 17}, (_, i) => `10.102.0.${i + 1}:80`))
    expect(picks(tableOnly(large))).to.have.length(32)
    expect(diffNftState(tableOnly(large), tableOnly(base)).table.kind).to.equal('replace')
  })

  it('adds affinity sets before the rules that use them, and deletes a member\'s chain and set after the rules that used them', async () => {
    const sticky = structuredClone(base)
    const withAffinity = regroup(sticky, id, old.members.map((m) => `${m.ip}:${m.port}`), 600)
    const added = await writesFor(base, sticky)
    expect(added.lines.filter((l) => l.startsWith('add set'))).to.have.members(
      [0, 1, 2].map((i) => `add set ip smartnat ${affinity(withAffinity, i)} { type ipv4_addr; flags dynamic, timeout; timeout 600s; }`),
    )
    expect(added.lines.filter((l) => l.startsWith('add set')).map((l) => added.lines.indexOf(l)).at(-1)).to.be.lessThan(added.lines.findIndex((l) => l.startsWith('add rule')))
    expect(added.lines.filter((l) => l.startsWith('add chain'))).to.have.members([groupChainName(id), ...[0, 1, 2].map((i) => member(withAffinity, i))].map((name) => `add chain ip smartnat ${name}`))
    expect(added.lines.filter((l) => l.includes(' targets '))).to.have.length(3)
    expect(added.lines).to.include(`add element ip smartnat direct { 198.18.0.10 . tcp . 20500 comment "direct/m0500 tcp/20500" : goto ${groupChainName(id)} }`)

    const shrunk = structuredClone(sticky)
    regroup(shrunk, id, ['10.102.0.1:80', '10.102.0.2:80'], 600)
    const {lines} = await writesFor(sticky, shrunk)
    const at = (line: string) => {
      const index = lines.indexOf(line)
      expect(index, line).to.be.greaterThan(-1)
      return index
    }
    const flushGroup = at(`flush chain ip smartnat ${groupChainName(id)}`)
    const deleteChain = at(`delete chain ip smartnat ${member(withAffinity, 2)}`)
    const deleteSet = at(`delete set ip smartnat ${affinity(withAffinity, 2)}`)
    expect(flushGroup).to.be.lessThan(deleteChain)
    expect(at(`flush chain ip smartnat ${member(withAffinity, 2)}`)).to.be.lessThan(deleteSet)
    expect(deleteChain).to.be.lessThan(deleteSet)
    // The members that stay keep their sets, and the clients in them.
    expect(lines.filter((l) => /^(add|delete) set /.test(l))).to.deep.equal([`delete set ip smartnat ${affinity(withAffinity, 2)}`])
  })

  it('empties a group by taking its endpoint out of direct and targets and adding it to unserved', async () => {
    const after = structuredClone(base)
    regroup(after, id, [])
    const {lines} = await writesFor(base, after)
    expect(lines).to.deep.equal([
      'delete element ip smartnat direct { 198.18.0.10 . tcp . 20500 }',
      ...[0, 1, 2].map((slot) => `delete element ip smartnat targets { 198.18.0.10 . tcp . 20500 . ${slot} }`),
      'add element ip smartnat unserved { 198.18.0.10 . tcp . 20500 comment "direct/m0500 tcp/20500" }',
    ])
  })

  it('adds and removes a whole direct Mapping through elements only', async () => {
    const fewer = structuredClone(base)
    fewer.mappings = fewer.mappings.filter((m) => m.name !== 'm0500')
    const removed = await writesFor(base, fewer)
    expect(removed.lines.map((l) => l.replace(/ \{.*| (group|member)_\w+$/, ''))).to.deep.equal([
      'delete element ip smartnat allowed_0',
      'delete element ip smartnat direct',
      'delete element ip smartnat direct_endpoints',
      ...Array(3).fill('delete element ip smartnat targets'),
    ])
    const restored = await writesFor(fewer, base)
    expect(restored.lines.map((l) => l.replace(/ \{.*/, ''))).to.deep.equal(removed.lines.map((l) => l.replace(/ \{.*/, '').replace('delete', 'add')))
  })

  it('replaces the table when the first direct Mapping comes, and when an affinity set was redeclared by hand', () => {
    const service = sampleModel()
    expect(diffNftState(tableOnly(directModel()), tableOnly(service)).table.kind).to.equal('replace')
    const actual = tableOnly(directModel())
    actual.table!.sets.find((s) => s.name === affinity(UDP53, 0))!.timeout = 30
    expect(diffNftState(tableOnly(directModel()), actual).table.kind).to.equal('replace')
  })

  it('refills mangle_output when it was flushed by hand, and replaces the table when it was deleted', () => {
    const flushed = tableOnly(directModel())
    flushed.table!.chains.find((c) => c.name === 'mangle_output')!.rules = []
    const refill = diffNftState(tableOnly(directModel()), flushed).table
    expect(refill.kind).to.equal('partial')
    expect(refill.kind === 'partial' && refill.refillChains.map((c) => c.name)).to.deep.equal(['mangle_output'])
    const deleted = tableOnly(directModel())
    deleted.table!.chains = deleted.table!.chains.filter((c) => c.name !== 'mangle_output')
    expect(diffNftState(tableOnly(directModel()), deleted).table.kind).to.equal('replace')
  })

  it('rewrites a member chain someone flushed, and only it; a flushed pick chain likewise', async () => {
    const actual = tableOnly(directModel())
    actual.table!.chains.find((c) => c.name === member(UDP53, 1))!.rules = []
    const runner = new RecordingRunner()
    await applyNftables(runner, tableOnly(directModel()), {assumeActual: actual})
    expect(runner.calls.map((c) => c.input)).to.deep.equal([
      `flush chain ip smartnat ${member(UDP53, 1)}\nadd rule ip smartnat ${member(UDP53, 1)} update @${affinity(UDP53, 1)} { ip saddr }\nadd rule ip smartnat ${member(UDP53, 1)} meta l4proto udp dnat to 10.244.2.2:5353\n`,
    ])
    const flushedPick = tableOnly(directModel())
    flushedPick.table!.chains.find((c) => c.name === 'pick_3')!.rules = []
    const change = diffNftState(tableOnly(directModel()), flushedPick).table
    expect(change.kind === 'partial' && change.refillChains.map((c) => c.name)).to.deep.equal(['pick_3'])
  })
})
