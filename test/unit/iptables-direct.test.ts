/** Mode direct in the iptables backend: the rules it renders, what a change of endpoints writes, flush, parts. */
import {expect} from 'chai'
import {applyIptables} from '../../src/lib/backend/iptables/apply.js'
import {changedEndpoints} from '../../src/lib/backend/iptables/endpoints.js'
import {flushIptables} from '../../src/lib/backend/iptables/flush.js'
import {savedProbability} from '../../src/lib/backend/iptables/groups.js'
import {iptablesMappings} from '../../src/lib/backend/iptables/mappings.js'
import {MAX_CHAIN_NAME, MAX_SET_NAME, UNSERVED_SET, addressChainName, affinityListName, groupChainName, isOwnedName, tempSetName} from '../../src/lib/backend/iptables/names.js'
import {iptablesParts} from '../../src/lib/backend/iptables/parts.js'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import {TABLES, type IptablesState} from '../../src/lib/backend/iptables/types.js'
import type {ApplyResult} from '../../src/lib/backend/result.js'
import {diffParts} from '../../src/lib/inspect/drift.js'
import type {NatGroup, NatModel} from '../../src/lib/plan/model.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {directMapping, directModel, group} from './iptables-direct-fixture.js'
import {cidr, ip, sampleModel} from './nat-model-fixture.js'

const A0 = addressChainName(ip('198.18.0.10'))
const STICKY = groupChainName('default/sticky tcp/443')
const STICKY_1 = affinityListName('default/sticky tcp/443', {ip: ip('198.19.200.21'), port: 8443})
const STICKY_2 = affinityListName('default/sticky tcp/443', {ip: ip('198.19.200.22'), port: 8443})
const CART = groupChainName('shop/cart tcp/80')
const EMPTY_TCP = groupChainName('default/empty tcp/9090')

function rulesOf(state: IptablesState, table: keyof IptablesState['tables'], name: string): string[] {
  const found = state.tables[table].chains.find((c) => c.name === name)
  if (!found) throw new Error(`no chain ${table}/${name}`)
  return found.rules
}

describe('iptables mode direct: rendering', () => {
  const state = renderIptables(directModel())

  it('jumps from the address chain to the group chain, with the comment naming the Mapping', () => {
    expect(rulesOf(state, 'nat', A0)).to.include.members([
      `-A ${A0} -p tcp -m tcp --dport 8443 -m comment --comment "default/sticky tcp/8443" -j ${STICKY}`,
      `-A ${A0} -p tcp -m tcp --dport 9090 -m comment --comment "default/empty tcp/9090" -j ${EMPTY_TCP}`,
    ])
  })

  it('DNATs to the members with probability 1/(N-i), the last one without a draw, without a chain per member', () => {
    expect(rulesOf(state, 'nat', CART)).to.deep.equal([
      `-A ${CART} -p tcp -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination 198.19.200.11:8080`,
      `-A ${CART} -p tcp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 198.19.200.12:8080`,
      `-A ${CART} -p tcp -j DNAT --to-destination 198.19.200.13:8081`,
    ])
    expect(rulesOf(state, 'nat', groupChainName('shop/cart udp/9000'))).to.deep.equal([
      `-A ${groupChainName('shop/cart udp/9000')} -p udp -j DNAT --to-destination 198.19.200.14:9000`,
    ])
  })

  it('with affinity, sends a client its member saw within the timeout back to it, and records the client with the pick', () => {
    expect(rulesOf(state, 'nat', STICKY)).to.deep.equal([
      `-A ${STICKY} -p tcp -m recent --update --seconds 10800 --reap --name ${STICKY_1} --mask 255.255.255.255 --rsource -j DNAT --to-destination 198.19.200.21:8443`,
      `-A ${STICKY} -p tcp -m recent --update --seconds 10800 --reap --name ${STICKY_2} --mask 255.255.255.255 --rsource -j DNAT --to-destination 198.19.200.22:8443`,
      `-A ${STICKY} -p tcp -m statistic --mode random --probability 0.50000000000 -m recent --set --name ${STICKY_1} --mask 255.255.255.255 --rsource -j DNAT --to-destination 198.19.200.21:8443`,
      `-A ${STICKY} -p tcp -m recent --set --name ${STICKY_2} --mask 255.255.255.255 --rsource -j DNAT --to-destination 198.19.200.22:8443`,
    ])
  })

  it('renders a group reached from two addresses once, and an empty group as an empty chain', () => {
    const names = state.tables.nat.chains.map((c) => c.name)
    expect(names.filter((n) => n === CART)).to.have.length(1)
    expect(rulesOf(state, 'nat', EMPTY_TCP)).to.deep.equal([])
  })

  it('refuses allowed connections to unserved endpoints in SNM-INPUT, before its drop', () => {
    expect(rulesOf(state, 'filter', 'SNM-INPUT')).to.deep.equal([
      '-A SNM-INPUT -p tcp -m set --match-set SNM-UNSERVED dst,dst -m connmark ! --mark 0x0/0xff00000 -j REJECT --reject-with tcp-reset',
      '-A SNM-INPUT -p udp -m set --match-set SNM-UNSERVED dst,dst -m connmark ! --mark 0x0/0xff00000 -j REJECT --reject-with icmp-port-unreachable',
      '-A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP',
    ])
    const sets = new Map(state.sets.map((s) => [s.name, s]))
    expect(sets.get(UNSERVED_SET)).to.deep.include({type: 'hash:ip,port', entries: ['198.18.0.10,tcp:9090', '198.18.0.10,udp:9090']})
    expect(sets.get('SNM-ENDPOINTS')!.entries).to.include.members(['198.18.0.10,tcp:9090', '198.18.1.10,tcp:8080', '198.18.2.10,tcp:8080'])
    expect(sets.get('SNM-ALLOW')!.entries).to.include.members(['198.18.0.10,tcp:8443,198.18.7.0/24', '198.18.1.10,udp:9000,0.0.0.0/1'])
  })

  it('routes the host’s refusals like replies: mangle OUTPUT restores the interface bits of inbound connections', () => {
    expect(state.tables.mangle.jumps).to.deep.equal([
      '-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING',
      '-A OUTPUT -m comment --comment smartnat -j SNM-OUTPUT',
    ])
    expect(rulesOf(state, 'mangle', 'SNM-OUTPUT')).to.deep.equal([
      '-A SNM-OUTPUT -m connmark ! --mark 0x0/0xff00000 -m connmark --mark 0x0/0x40000 -m conntrack --ctdir REPLY -j CONNMARK --restore-mark --nfmask 0xff00000 --ctmask 0xff00000',
    ])
  })

  it('keeps the unserved set, empty, while every group has members', () => {
    const model = directModel()
    model.mappings = model.mappings.filter((m) => m.name !== 'empty')
    const served = renderIptables(model)
    expect(served.sets.find((s) => s.name === UNSERVED_SET)!.entries).to.deep.equal([])
    expect(rulesOf(served, 'filter', 'SNM-INPUT')).to.have.length(3)
  })

  it('without a direct Mapping, renders neither the unserved set nor its rules', () => {
    const service = renderIptables(sampleModel())
    expect(service.sets.map((s) => s.name)).to.not.include(UNSERVED_SET)
    expect(rulesOf(service, 'filter', 'SNM-INPUT')).to.deep.equal(['-A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP'])
    expect(service.tables.nat.chains.map((c) => c.name).filter((n) => n.startsWith('SNM-G-') || n.startsWith('SNM-E-'))).to.deep.equal([])
    expect(service.tables.mangle.chains.map((c) => c.name)).to.deep.equal(['SNM-PREROUTING'])
  })

  it('names group chains and affinity lists within the kernel limit, owned, one chain per group and none per member', () => {
    const names = state.tables.nat.chains.map((c) => c.name).filter((n) => n.startsWith('SNM-G-') || n.startsWith('SNM-E-'))
    // Groups: cart tcp, cart udp, sticky, empty tcp, empty udp.
    expect(names).to.have.length(5)
    expect(names.every((n) => n.startsWith('SNM-G-'))).to.equal(true)
    expect(new Set(names).size).to.equal(names.length)
    for (const name of [...names, STICKY_1, STICKY_2]) {
      expect(name.length, name).to.be.at.most(MAX_CHAIN_NAME)
      expect(isOwnedName(name), name).to.equal(true)
    }
    expect(tempSetName(UNSERVED_SET).length).to.be.at.most(MAX_SET_NAME)
    expect(isOwnedName(UNSERVED_SET)).to.equal(true)
  })

  it('prints probabilities as iptables-save does: the 31-bit fraction with 11 decimals, ties to even', () => {
    // Read from iptables-save 1.8.9 after loading the probabilities 1/n.
    const printed: [number, string][] = [
      [2, '0.50000000000'],
      [3, '0.33333333349'],
      [4, '0.25000000000'],
      [5, '0.20000000019'],
      [7, '0.14285714272'],
      [10, '0.10000000009'],
      [4096, '0.00024414062'],
    ]
    for (const [n, text] of printed) expect(`1/${n} ${savedProbability(n)}`).to.equal(`1/${n} ${text}`)
  })

  describe('refuses groups whose chains would overwrite each other', () => {
    const withMapping = (mapping: ReturnType<typeof directMapping>) => {
      const model = directModel()
      model.mappings.push(mapping)
      return model
    }
    const cases: [string, NatModel, RegExp][] = [
      [
        'one group id in two Mappings',
        withMapping(directMapping('shop/other', [['198.18.1.10', 'eth2']], ['0.0.0.0/0'], [['198.18.1.10 tcp/81', group('shop/cart tcp/80', ['198.19.200.11:8080'])]])),
        /mapping shop\/cart: endpoint group "shop\/cart tcp\/80" differs from the group of that id in mapping shop\/other/,
      ],
      [
        'one group id with two sets of members',
        withMapping(
          directMapping('shop/two', [['198.18.1.10', 'eth2']], ['0.0.0.0/0'], [
            ['198.18.1.10 tcp/81', group('shop/two tcp/80', ['198.19.200.11:8080'])],
            ['198.18.1.10 tcp/82', group('shop/two tcp/80', ['198.19.200.12:8080'])],
          ]),
        ),
        /mapping shop\/two: endpoint group "shop\/two tcp\/80" differs/,
      ],
      [
        'one group for two protocols',
        withMapping(
          directMapping('shop/both', [['198.18.1.10', 'eth2']], ['0.0.0.0/0'], [
            ['198.18.1.10 tcp/81', group('shop/both tcp/80', ['198.19.200.11:8080'])],
            ['198.18.1.10 udp/81', group('shop/both tcp/80', ['198.19.200.11:8080'])],
          ]),
        ),
        /mapping shop\/both: endpoint group "shop\/both tcp\/80" differs/,
      ],
      [
        'a member listed twice',
        withMapping(directMapping('shop/twice', [['198.18.1.10', 'eth2']], ['0.0.0.0/0'], [['198.18.1.10 tcp/81', group('shop/twice tcp/80', ['198.19.200.11:8080', '198.19.200.11:8080'])]])),
        /mapping shop\/twice: endpoint group "shop\/twice tcp\/80" lists a member twice/,
      ],
    ]
    for (const [name, model, error] of cases) it(name, () => expect(() => renderIptables(model)).to.throw(error))
  })
})

/**
 * `count` direct Mappings, one address each on eth1, tcp/80 spread over three pods; every third
 * with affinity, every hundredth with no endpoint at all.
 */
function manyDirectModel(count: number, edit: (i: number, g: NatGroup) => NatGroup = (_, g) => g): NatModel {
  const mappings = []
  for (let i = 0; i < count; i++) {
    const address = `198.18.${Math.floor(i / 250)}.${(i % 250) + 1}`
    const pods = i % 100 === 0 ? [] : [1, 2, 3].map((k) => `10.${Math.floor(i / 250)}.${i % 250}.${k}:8080`)
    const g = edit(i, group(`load/m-${i} tcp/80`, pods, i % 3 === 0 ? 10800 : undefined))
    mappings.push(directMapping(`load/m-${i}`, [[address, 'eth1']], ['0.0.0.0/0'], [[`${address} tcp/80`, g]]))
  }
  mappings.sort((a, b) => (a.name < b.name ? -1 : 1))
  return {masquerade: true, interfaces: [{name: 'eth1', index: 1, table: 7001, subnets: [{cidr: cidr('198.18.0.0/20'), source: ip('198.18.0.1')}], gateway: ip('198.18.0.254')}], mappings, egress: []}
}

/** Applies `desired` over `actual` as the watch does (no read), returning what it wrote. */
async function applyOver(actual: IptablesState, desired: IptablesState): Promise<{result: ApplyResult; iptables: string[]; ipset: string[]}> {
  const runner = new RecordingRunner()
  const result = await applyIptables(runner, desired, {assumeActual: actual})
  const payload = (command: string) => runner.calls.filter((c) => c.command === command).flatMap((c) => c.input!.trimEnd().split('\n'))
  return {result, iptables: payload('iptables-restore'), ipset: payload('ipset')}
}

const memberOf = (i: number, k: number) => ({ip: ip(`10.${Math.floor(i / 250)}.${i % 250}.${k}`), port: 8080})

describe('iptables mode direct: a change of endpoints among 1,000 direct Mappings', () => {
  const before = renderIptables(manyDirectModel(1000))

  it('rewrites only the changed group chain', async () => {
    const after = renderIptables(manyDirectModel(1000, (i, g) => (i === 512 ? group(g.id, ['10.2.12.1:8080', '10.2.12.3:8080', '10.2.12.4:8080']) : g)))
    const {result, iptables, ipset} = await applyOver(before, after)
    const G = groupChainName('load/m-512 tcp/80')
    expect(iptables).to.deep.equal([
      '*nat',
      `:${G} - [0:0]`,
      `-A ${G} -p tcp -m statistic --mode random --probability 0.33333333349 -j DNAT --to-destination 10.2.12.1:8080`,
      `-A ${G} -p tcp -m statistic --mode random --probability 0.50000000000 -j DNAT --to-destination 10.2.12.3:8080`,
      `-A ${G} -p tcp -j DNAT --to-destination 10.2.12.4:8080`,
      'COMMIT',
    ])
    expect(ipset).to.deep.equal([])
    expect(result.written).to.deep.equal({sets: 0, chains: 1, rules: 3, routes: 0})
    // Leaving a group is not a deleted pod: its established connections stay.
    expect(result.changedEndpoints).to.deep.equal([])
  })

  it('with affinity, names the recent lists of the members that stay again, and drops the list of the one that left', async () => {
    const id = 'load/m-501 tcp/80'
    const after = renderIptables(manyDirectModel(1000, (i, g) => (i === 501 ? group(g.id, ['10.2.1.1:8080', '10.2.1.2:8080'], 10800) : g)))
    const {iptables, result} = await applyOver(before, after)
    const declared = iptables.filter((l) => l.startsWith(':')).map((l) => l.split(' ')[0]!.slice(1))
    expect(declared).to.deep.equal([groupChainName(id)])
    const [kept1, kept2, gone] = [1, 2, 3].map((k) => affinityListName(id, memberOf(501, k)))
    const lists = iptables.join('\n')
    expect(lists).to.include(`--name ${kept1} `).and.to.include(`--name ${kept2} `).and.not.to.include(`--name ${gone} `)
    expect(result.written).to.deep.equal({sets: 0, chains: 1, rules: 4, routes: 0})
  })

  it('empties a group: its chain is emptied and its endpoint joins the unserved set in place', async () => {
    const id = 'load/m-502 tcp/80'
    const after = renderIptables(manyDirectModel(1000, (i, g) => (i === 502 ? group(g.id, []) : g)))
    const {iptables, ipset, result} = await applyOver(before, after)
    expect(iptables).to.deep.equal(['*nat', `:${groupChainName(id)} - [0:0]`, 'COMMIT'])
    expect(ipset).to.deep.equal(['add SNM-UNSERVED 198.18.2.3,tcp:80'])
    expect(result.written).to.deep.equal({sets: 1, chains: 1, rules: 0, routes: 0})
  })

  it('serves an unserved group: its chain is filled, and its endpoint leaves the unserved set in place', async () => {
    const after = renderIptables(manyDirectModel(1000, (i, g) => (i === 600 ? group(g.id, ['10.2.100.1:8080'], 10800) : g)))
    const {ipset, result} = await applyOver(before, after)
    expect(ipset).to.deep.equal(['del SNM-UNSERVED 198.18.2.101,tcp:80'])
    // The member's recent check, and its pick that records the client.
    expect(result.written).to.deep.equal({sets: 1, chains: 1, rules: 2, routes: 0})
  })

  it('deletes the chains of a removed Mapping only after the rules that reach them are gone', async () => {
    const model = manyDirectModel(1000)
    model.mappings = model.mappings.filter((m) => m.name !== 'm-701')
    const {iptables} = await applyOver(before, renderIptables(model))
    const deleted = [addressChainName(ip('198.18.2.202')), groupChainName('load/m-701 tcp/80')]
    expect(iptables.filter((l) => l.startsWith('-X ')).sort()).to.deep.equal(deleted.map((c) => `-X ${c}`).sort())
    const firstDelete = iptables.findIndex((l) => l.startsWith('-X '))
    expect(iptables.slice(firstDelete).filter((l) => l.startsWith('-A '))).to.deep.equal([])
    expect(iptables.filter((l) => l.startsWith(':')).length).to.equal(1 + deleted.length)
  })
})

describe('iptables mode direct: conntrack, flush, parts', () => {
  it('keeps the connections of an endpoint whose Mapping moves from mode service to direct', () => {
    const model = sampleModel()
    const web = model.mappings.find((m) => m.name === 'web' && m.namespace === 'default')!
    const g = group('default/web tcp/80', ['198.19.200.11:8080'])
    web.endpoints = web.endpoints.map((e) => (e.protocol === 'tcp' && e.port === 80 ? {address: e.address, protocol: e.protocol, port: e.port, group: g} : e))
    web.groups = [g]
    const changed = changedEndpoints(renderIptables(model).tables.nat, renderIptables(sampleModel()).tables.nat)
    expect(changed).to.deep.equal([])
    // The same Mapping losing the port altogether still has its connections cut.
    web.endpoints = web.endpoints.filter((e) => e.port !== 80)
    expect(changedEndpoints(renderIptables(model).tables.nat, renderIptables(sampleModel()).tables.nat).map((e) => `${e.address} ${e.port}`)).to.deep.equal([
      '198.18.0.10 80',
      '198.18.2.10 80',
    ])
  })

  it('cuts the connections of a direct endpoint that goes away, to each pod its group had, and of one moved back to mode service', () => {
    const withoutCart = directModel()
    withoutCart.mappings = withoutCart.mappings.filter((m) => m.name !== 'cart')
    const gone = changedEndpoints(renderIptables(withoutCart).tables.nat, renderIptables(directModel()).tables.nat)
    expect(gone.map((e) => `${e.address} ${e.protocol}/${e.port} ${e.oldTarget}`).sort()).to.deep.equal([
      '198.18.1.10 tcp/8080 198.19.200.11:8080',
      '198.18.1.10 tcp/8080 198.19.200.12:8080',
      '198.18.1.10 tcp/8080 198.19.200.13:8081',
      '198.18.1.10 udp/9000 198.19.200.14:9000',
      '198.18.2.10 tcp/8080 198.19.200.11:8080',
      '198.18.2.10 tcp/8080 198.19.200.12:8080',
      '198.18.2.10 tcp/8080 198.19.200.13:8081',
    ])
    const back = directModel()
    const sticky = back.mappings.find((m) => m.name === 'sticky')!
    sticky.endpoints = [{address: ip('198.18.0.10'), protocol: 'tcp', port: 8443, targetIP: ip('198.19.100.30'), targetPort: 443}]
    delete sticky.groups
    const moved = changedEndpoints(renderIptables(back).tables.nat, renderIptables(directModel()).tables.nat)
    expect(moved.map((e) => e.oldTarget)).to.deep.equal(['198.19.200.21:8443', '198.19.200.22:8443'])
    // An empty group sent nothing anywhere: nothing to cut.
    const noEmpty = directModel()
    noEmpty.mappings = noEmpty.mappings.filter((m) => m.name !== 'empty')
    expect(changedEndpoints(renderIptables(noEmpty).tables.nat, renderIptables(directModel()).tables.nat)).to.deep.equal([])
  })

  it('counts a direct Mapping as programmed by the comment of its jump to the group', () => {
    expect([...iptablesMappings(renderIptables(directModel()))].sort()).to.deep.equal(['default/dns', 'default/empty', 'default/sticky', 'default/web', 'shop/cart', 'shop/web'])
  })

  it('flush removes group chains and the unserved set, found by the ownership predicate', async () => {
    const state = renderIptables(directModel())
    const save = TABLES.map((t) =>
      [`*${t}`, ...state.tables[t].chains.map((c) => `:${c.name} - [0:0]`), ...state.tables[t].chains.flatMap((c) => c.rules), ...state.tables[t].jumps, 'COMMIT'].join('\n'),
    ).join('\n')
    const sets = state.sets.map((s) => `create ${s.name} ${s.type} ${s.options}\n${s.entries.map((e) => `add ${s.name} ${e}\n`).join('')}`).join('')
    const runner = new RecordingRunner((call) => {
      const line = [call.command, ...call.args].join(' ')
      if (line === 'iptables-save') return {stdout: save}
      if (line === 'ipset save') return {stdout: sets}
      if (line.startsWith('ip ')) return {stdout: '[]'}
      return {}
    })
    const report = await flushIptables(runner, {dryRun: false})
    expect(report.removed.chains).to.include.members([`nat: ${CART}`, `nat: ${STICKY}`, `nat: ${EMPTY_TCP}`])
    expect(report.removed.sets).to.include(UNSERVED_SET)
    const restore = runner.calls.find((c) => c.command === 'iptables-restore')!.input!
    for (const name of [CART, STICKY, EMPTY_TCP]) expect(restore).to.include(`-X ${name}\n`)
    expect(runner.calls.find((c) => c.command === 'ipset' && c.input?.includes('destroy SNM-UNSERVED'))).to.not.equal(undefined)
  })

  describe('parts', () => {
    const model = directModel()
    const state = renderIptables(model)
    const parts = iptablesParts(state, model)
    const chainPart = (name: string) => parts.find((p) => p.kind === 'chain' && p.text === `:${name}`)!

    it('attributes group chains and their rules to their Mapping, an empty group too', () => {
      expect(chainPart(CART).mappings).to.deep.equal(['shop/cart'])
      expect(chainPart(STICKY).mappings).to.deep.equal(['default/sticky'])
      expect(chainPart(EMPTY_TCP).mappings).to.deep.equal(['default/empty'])
      const groupRules = parts.filter((p) => p.kind === 'rule' && p.where === `nat ${STICKY}`)
      expect(groupRules).to.have.length(4)
      expect(groupRules.every((p) => p.mappings.length === 1 && p.mappings[0] === 'default/sticky')).to.equal(true)
      const jump = parts.find((p) => p.kind === 'rule' && p.text.endsWith(`-j ${STICKY}`))!
      expect(jump).to.deep.include({mappings: ['default/sticky'], endpoint: '198.18.0.10 tcp/8443'})
    })

    it('attributes unserved set entries to the Mapping of their endpoint', () => {
      const entries = parts.filter((p) => p.kind === 'set-entry' && p.where === `set ${UNSERVED_SET}`)
      expect(entries.map((p) => [p.text, p.mappings, p.endpoint])).to.deep.equal([
        ['198.18.0.10,tcp:9090', ['default/empty'], '198.18.0.10 tcp/9090'],
        ['198.18.0.10,udp:9090', ['default/empty'], '198.18.0.10 udp/9090'],
      ])
    })

    it('attributes a direct Mapping the model no longer has by the comments that reach its chains', () => {
      const stale = iptablesParts(state, {...model, mappings: []})
      const of = (name: string) => stale.find((p) => p.kind === 'chain' && p.text === `:${name}`)!.mappings
      expect([of(CART), of(STICKY)]).to.deep.equal([['shop/cart'], ['default/sticky']])
      const rules = stale.filter((p) => p.kind === 'rule' && p.where === `nat ${STICKY}`)
      expect(rules.map((p) => p.mappings)).to.deep.equal([['default/sticky'], ['default/sticky'], ['default/sticky'], ['default/sticky']])
    })

    it('shows a deleted group chain, and the jump to it, as missing for its Mapping', () => {
      const actual = renderIptables(model)
      actual.tables.nat.chains = actual.tables.nat.chains.filter((c) => c.name !== STICKY)
      const chain = actual.tables.nat.chains.find((c) => c.name === A0)!
      chain.rules = chain.rules.filter((r) => !r.endsWith(`-j ${STICKY}`))
      const drift = diffParts(parts, iptablesParts(actual, model))
      expect(drift.unexpected).to.deep.equal([])
      expect(drift.missing.map((p) => `${p.kind} ${p.mappings.join(',')}`).sort()).to.deep.equal([
        'chain default/sticky',
        'rule default/sticky',
        'rule default/sticky',
        'rule default/sticky',
        'rule default/sticky',
        'rule default/sticky',
      ])
    })
  })
})
