import {expect} from 'chai'
import {RecordingRunner} from '../support/recording-runner.js'
import {INTERFACE_MASK} from '../../src/lib/net/marks.js'
import {parseRuleExpressions} from '../../src/lib/backend/nftables/parse.js'
import {forwardDropProblem, forwardDrops, iptablesForwardDrops, nftChainAcceptsSmartnat, nftForwardDropChains, type ForwardDropOptions} from '../../src/lib/backend/forward.js'

const filterSave = (policy: string, ...rules: string[]) => ['*filter', ':INPUT ACCEPT [0:0]', `:FORWARD ${policy} [0:0]`, ':OUTPUT ACCEPT [0:0]', ...rules, 'COMMIT', ''].join('\n')

const chain = (family: string, table: string, name: string, hook: string | undefined, policy: string) => ({
  chain: {family, table, name, handle: 1, ...(hook ? {type: 'filter', hook, prio: 0, policy} : {})},
})
const nftJson = (...items: unknown[]) => JSON.stringify({nftables: [{metainfo: {version: '1.0.6', json_schema_version: 1}}, ...items]})

const ACCEPT_RULE = {
  rule: {family: 'inet', table: 'fw', chain: 'forward', handle: 2, expr: [{match: {op: '!=', left: {'&': [{ct: {key: 'mark'}}, 0x0ff00000]}, right: 0}}, {accept: null}]},
}
const OTHER_ACCEPT = {
  rule: {family: 'inet', table: 'fw', chain: 'forward', handle: 3, expr: [{match: {op: '!=', left: {'&': [{ct: {key: 'mark'}}, 0x0000ff00]}, right: 0}}, {accept: null}]},
}

describe('forward-hook drops smartnat cannot overrule', () => {
  it('iptables-save: a DROP policy without the accept for smartnat’s connections', () => {
    expect(iptablesForwardDrops(filterSave('ACCEPT'))).to.equal(false)
    expect(iptablesForwardDrops(filterSave('DROP'))).to.equal(true)
    expect(iptablesForwardDrops(filterSave('DROP', '-A FORWARD -j DOCKER-USER'))).to.equal(true)
    expect(iptablesForwardDrops(filterSave('DROP', '-A FORWARD -j DOCKER-USER', '-A FORWARD -m connmark ! --mark 0x0/0xff00000 -j ACCEPT'))).to.equal(false)
    expect(iptablesForwardDrops(filterSave('DROP', '-A FORWARD -m connmark ! --mark 0x0/0xff -j ACCEPT'))).to.equal(true)
    // smartnat's own accept, as the nftables backend writes it, counts as well.
    expect(iptablesForwardDrops(filterSave('DROP', '-A FORWARD -m connmark ! --mark 0x0/0xff00000 -m comment --comment smartnat-nftables -j ACCEPT'))).to.equal(false)
  })

  it('nft -j list chains: IPv4 forward base chains with policy drop, smartnat’s own table aside', () => {
    const listed = nftJson(
      chain('ip', 'filter', 'FORWARD', 'forward', 'drop'),
      chain('inet', 'fw', 'forward', 'forward', 'drop'),
      chain('inet', 'fw', 'input', 'input', 'drop'),
      chain('ip', 'open', 'forward', 'forward', 'accept'),
      chain('ip6', 'fw6', 'forward', 'forward', 'drop'),
      chain('ip', 'smartnat', 'forward', 'forward', 'drop'),
      chain('inet', 'fw', 'helper', undefined, ''),
    )
    expect(nftForwardDropChains(listed)).to.deep.equal([
      {family: 'ip', table: 'filter', name: 'FORWARD'},
      {family: 'inet', table: 'fw', name: 'forward'},
    ])
  })

  it('nft -j list chain: the accept for smartnat’s connections, and only that mask', () => {
    expect(nftChainAcceptsSmartnat(nftJson(chain('inet', 'fw', 'forward', 'forward', 'drop'), ACCEPT_RULE))).to.equal(true)
    expect(nftChainAcceptsSmartnat(nftJson(chain('inet', 'fw', 'forward', 'forward', 'drop'), OTHER_ACCEPT))).to.equal(false)
    expect(nftChainAcceptsSmartnat(nftJson(chain('inet', 'fw', 'forward', 'forward', 'drop')))).to.equal(false)
  })

  it('nft -j list chain: recognizes the accept exactly where the nftables backend’s parser reads `ct mark & MASK != 0 accept`', () => {
    const mark = (mask: unknown, op = '!=', right: unknown = 0, of = 'ct') => ({match: {op, left: {'&': [{[of]: {key: 'mark'}}, mask]}, right}})
    const MASK = 0x0ff00000
    const shapes: unknown[] = [
      [mark(MASK), {accept: null}],
      [mark(MASK + 2 ** 32), {accept: null}],
      [mark(MASK, '!=', 2 ** 32), {accept: null}],
      [mark(MASK), {drop: null}],
      [mark(MASK), {accept: {}}],
      [mark(MASK, '=='), {accept: null}],
      [mark(MASK, '!=', 1), {accept: null}],
      [mark(MASK, '!=', '@set'), {accept: null}],
      [mark(MASK, '!=', 0, 'meta'), {accept: null}],
      [mark(0xff), {accept: null}],
      [mark(0.5), {accept: null}],
      [mark(MASK), mark(MASK), {accept: null}],
      [mark(MASK), {accept: null}, {counter: null}],
      [{accept: null}],
      [{match: {op: '!=', left: {'&': [{ct: {key: 'mark'}}, MASK], extra: 1}, right: 0}}, {accept: null}],
      [{match: {op: '!=', left: {'&': [{ct: {key: 'mark', dir: 'original'}}, MASK]}, right: 0}}, {accept: null}],
      [{match: {op: '!=', left: {'&': [{ct: {key: 'mark'}, meta: {}}, MASK]}, right: 0}}, {accept: null}],
      [{match: {op: '!=', left: {'&': [{ct: {key: 'mark'}}, MASK, 1]}, right: 0}}, {accept: null}],
      [{match: {op: '!=', left: {'&': [{ct: {key: 'mark'}}, MASK]}, right: 0}, counter: null}, {accept: null}],
      [{match: {op: '!=', left: {'&': [{ct: {key: 'mark'}}, MASK]}, right: 0}}, {accept: null, counter: null}],
      [{match: {op: '!=', left: {'&': [{ct: {key: 'state'}}, MASK]}, right: 0}}, {accept: null}],
      [{match: {op: '!=', left: [{ct: {key: 'mark'}}, MASK], right: 0}}, {accept: null}],
      [{match: 'ct mark'}, {accept: null}],
      [],
      'accept',
      undefined,
    ]
    for (const expr of shapes) {
      const parsed = parseRuleExpressions(expr)
      const [match] = 'unknown' in parsed ? [] : parsed.matches
      const byParser =
        !('unknown' in parsed) &&
        parsed.statement.kind === 'accept' &&
        parsed.matches.length === 1 &&
        match!.kind === 'mark' &&
        match!.of === 'ct' &&
        match!.mask === INTERFACE_MASK &&
        match!.value === 0 &&
        match!.negate
      const rule = {rule: {family: 'inet', table: 'fw', chain: 'forward', handle: 4, expr}}
      expect(nftChainAcceptsSmartnat(nftJson(rule)), JSON.stringify(expr)).to.equal(byParser)
    }
  })

  describe('problems, each naming its fix', () => {
    const host = (outputs: Record<string, string | Error>) =>
      new RecordingRunner((call) => {
        const out = outputs[[call.command, ...call.args].join(' ')]
        if (out === undefined) return new Error(`unexpected command ${call.command} ${call.args.join(' ')}`)
        return out instanceof Error ? out : {stdout: out}
      })
    const problems = async (outputs: Record<string, string | Error>, options: ForwardDropOptions) =>
      (await forwardDrops(host(outputs), options)).map(forwardDropProblem)
    const IPTABLES_FIX =
      "iptables' FORWARD chain drops by default (policy DROP), which the nftables backend's accept cannot overrule: DNATed traffic is dropped; accept smartnat's connections there first (--no-forward-accept keeps smartnat from doing it): `iptables -I FORWARD 1 -m connmark ! --mark 0x0/0xff00000 -j ACCEPT`"
    const IPTABLES_SYNC_FIX =
      "iptables' FORWARD chain drops by default (policy DROP), which the nftables backend's accept cannot overrule: DNATed traffic is dropped; `smartnat sync` accepts smartnat's connections there first (`iptables -I FORWARD 1 -m connmark ! --mark 0x0/0xff00000 -j ACCEPT`, marked as smartnat's)"
    const NFT_FIX =
      "nft chain inet fw forward drops forwarded traffic by default (policy drop), which smartnat's accept cannot overrule: DNATed traffic is dropped; accept smartnat's connections there first: `nft insert rule inet fw forward ct mark & 0x0ff00000 != 0 accept`"

    it('iptables’ FORWARD policy concerns the nftables backend only; iptables-nft’s chain is not reported twice', async () => {
      const outputs = {'iptables-save -t filter': filterSave('DROP'), 'nft -j list chains': nftJson(chain('ip', 'filter', 'FORWARD', 'forward', 'drop'))}
      expect(await problems(outputs, {backend: 'nftables', forwardAccept: false})).to.deep.equal([IPTABLES_FIX])
      expect(await problems(outputs, {backend: 'nftables', forwardAccept: true})).to.deep.equal([IPTABLES_SYNC_FIX])
      expect(await problems(outputs, {backend: 'iptables'})).to.deep.equal([])
    })

    it('a native nft forward chain that drops concerns both backends until it accepts smartnat’s connections', async () => {
      const outputs = {
        'iptables-save -t filter': filterSave('ACCEPT'),
        'nft -j list chains': nftJson(chain('inet', 'fw', 'forward', 'forward', 'drop')),
        'nft -j list chain inet fw forward': nftJson(chain('inet', 'fw', 'forward', 'forward', 'drop'), OTHER_ACCEPT),
      }
      expect(await problems(outputs, {backend: 'nftables'})).to.deep.equal([NFT_FIX])
      expect(await problems(outputs, {backend: 'iptables'})).to.deep.equal([NFT_FIX])
      const fixed = {...outputs, 'nft -j list chain inet fw forward': nftJson(chain('inet', 'fw', 'forward', 'forward', 'drop'), ACCEPT_RULE)}
      expect(await problems(fixed, {backend: 'nftables'})).to.deep.equal([])
    })

    it('the iptables backend reads iptables’ FORWARD only when nft shows iptables-nft’s chain dropping: one process less for every sync and status', async () => {
      const commands = async (outputs: Record<string, string | Error>) => {
        const runner = host(outputs)
        await forwardDrops(runner, {backend: 'iptables'})
        return runner.calls.map((call) => [call.command, ...call.args].join(' '))
      }
      const filter = {'iptables-save -t filter': filterSave('DROP')}
      expect(await commands({...filter, 'nft -j list chains': nftJson(chain('inet', 'fw', 'input', 'input', 'drop'))})).to.deep.equal(['nft -j list chains'])
      expect(await commands({...filter, 'nft -j list chains': nftJson(chain('ip', 'filter', 'FORWARD', 'forward', 'drop'))})).to.deep.equal([
        'nft -j list chains',
        'iptables-save -t filter',
      ])
    })

    it('what cannot be read, or read as something else, is not reported', async () => {
      const denied = new Error('Operation not permitted')
      expect(await problems({'iptables-save -t filter': denied, 'nft -j list chains': denied}, {backend: 'nftables'})).to.deep.equal([])
      expect(await problems({'iptables-save -t filter': '', 'nft -j list chains': ''}, {backend: 'nftables'})).to.deep.equal([])
    })
  })
})
