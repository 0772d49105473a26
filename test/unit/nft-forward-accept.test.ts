/**
 * The nftables backend's one rule outside its table: an accept for smartnat's connections first in
 * iptables' FORWARD, written where that chain filters anything, kept exactly once, removed by flush.
 */
import {expect} from 'chai'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {FORWARD_ACCEPT_RULE, forwardAcceptPayload, isOwnedForwardRule} from '../../src/lib/backend/nftables/forward-accept.js'
import {flushNftables} from '../../src/lib/backend/nftables/flush.js'
import {parseIptablesForward} from '../../src/lib/backend/forward.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'

const OWNED = '-A FORWARD -m connmark ! --mark 0x0/0xff00000 -m comment --comment smartnat-nftables -j ACCEPT'
const OPERATORS = '-A FORWARD -m connmark ! --mark 0x0/0xff00000 -j ACCEPT'
const DOCKER = '-A FORWARD -j DOCKER-USER'
const INSERT = '-I FORWARD 1 -m connmark ! --mark 0x0/0xff00000 -m comment --comment smartnat-nftables -j ACCEPT'

const filterSave = (policy: string, ...rules: string[]) => ['*filter', ':INPUT ACCEPT [0:0]', `:FORWARD ${policy} [0:0]`, ':OUTPUT ACCEPT [0:0]', ...rules, 'COMMIT', ''].join('\n')
const restore = (...lines: string[]) => ['*filter', ...lines, 'COMMIT', ''].join('\n')

describe('the nftables backend’s accept in iptables’ FORWARD', () => {
  it('is the iptables backend’s accept with a comment that makes it smartnat’s', () => {
    expect(FORWARD_ACCEPT_RULE).to.equal(OWNED)
    expect(isOwnedForwardRule(OWNED)).to.equal(true)
    expect(isOwnedForwardRule('-A FORWARD -s 198.18.9.0/24 -m comment --comment smartnat-nftables -j DROP')).to.equal(true)
    expect(isOwnedForwardRule(OPERATORS)).to.equal(false)
    expect(isOwnedForwardRule('-A FORWARD -m comment --comment "smartnat-nftables too" -j ACCEPT')).to.equal(false)
    expect(isOwnedForwardRule('-A INPUT -m comment --comment smartnat-nftables -j ACCEPT')).to.equal(false)
  })

  const cases: {desc: string; save: string; wanted: boolean; want: string}[] = [
    {desc: 'a DROP policy gets the accept, first', save: filterSave('DROP'), wanted: true, want: restore(INSERT)},
    {desc: 'rules of others get it, whatever the policy', save: filterSave('ACCEPT', DOCKER), wanted: true, want: restore(INSERT)},
    {desc: 'a chain that filters nothing gets nothing', save: filterSave('ACCEPT'), wanted: true, want: ''},
    {desc: 'no filter table at all gets nothing', save: '', wanted: true, want: ''},
    {desc: 'an accept already there is left alone', save: filterSave('DROP', DOCKER, OWNED), wanted: true, want: ''},
    {desc: 'it stays when the chain stops filtering', save: filterSave('ACCEPT', OWNED), wanted: true, want: ''},
    {desc: 'a second copy goes', save: filterSave('DROP', OWNED, DOCKER, OWNED), wanted: true, want: restore(OWNED.replace('-A', '-D'))},
    {
      desc: 'a rule of smartnat’s that is not the accept is replaced',
      save: filterSave('DROP', '-A FORWARD -m connmark ! --mark 0x0/0xff -m comment --comment smartnat-nftables -j ACCEPT'),
      wanted: true,
      want: restore(INSERT, '-D FORWARD -m connmark ! --mark 0x0/0xff -m comment --comment smartnat-nftables -j ACCEPT'),
    },
    {desc: 'with --no-forward-accept it goes, the operator’s own accept stays', save: filterSave('DROP', OPERATORS, OWNED), wanted: false, want: restore(OWNED.replace('-A', '-D'))},
    {desc: 'with --no-forward-accept nothing is added', save: filterSave('DROP'), wanted: false, want: ''},
  ]
  for (const {desc, save, wanted, want} of cases) {
    it(desc, () => {
      expect(forwardAcceptPayload(parseIptablesForward(save), wanted)).to.equal(want)
    })
  }

  describe('Backend.forward', () => {
    /** A host whose iptables' FORWARD starts as `save` and takes what iptables-restore is given; no native nft chains. */
    function host(save: string | Error, restoreFails = false) {
      let rules = save instanceof Error ? [] : parseIptablesForward(save).rules
      const policy = save instanceof Error ? '' : parseIptablesForward(save).policy!
      const runner = new RecordingRunner((call: RecordedCall) => {
        const line = [call.command, ...call.args].join(' ')
        if (line === 'iptables-save -t filter') return save instanceof Error ? save : {stdout: filterSave(policy, ...rules)}
        if (line === 'nft -j list chains') return {stdout: JSON.stringify({nftables: []})}
        if (line === 'iptables-restore --noflush --wait') {
          if (restoreFails) return new CommandError('iptables-restore', ['--noflush', '--wait'], 4, 'iptables-restore: line 2 failed')
          for (const written of call.input!.split('\n')) {
            if (written.startsWith('-I FORWARD 1 ')) rules = [written.replace('-I FORWARD 1 ', '-A FORWARD '), ...rules]
            if (written.startsWith('-D FORWARD ')) rules.splice(rules.indexOf(written.replace('-D ', '-A ')), 1)
          }
          return {}
        }
        return new Error(`unexpected command ${line}`)
      })
      return {runner, rules: () => rules, writes: () => runner.calls.filter((c) => c.command === 'iptables-restore').length}
    }

    it('accepts smartnat’s connections where FORWARD drops, once: the next check writes nothing', async () => {
      const h = host(filterSave('DROP', DOCKER))
      const backend = nftablesBackend(h.runner)
      expect(await backend.forward({fix: true})).to.deep.equal({written: 1, drops: []})
      expect(h.rules()).to.deep.equal([OWNED, DOCKER])
      expect(await backend.forward({fix: true})).to.deep.equal({written: 0, drops: []})
      expect(h.writes()).to.equal(1)
    })

    it('with --no-forward-accept writes nothing and names the chain that drops', async () => {
      const h = host(filterSave('DROP'))
      const {written, drops} = await nftablesBackend(h.runner, {forwardAccept: false}).forward({fix: true})
      expect(written).to.equal(0)
      expect(drops.map((d) => [d.chain, d.reason])).to.deep.equal([
        ['iptables FORWARD', "iptables' FORWARD chain drops by default (policy DROP), which the nftables backend's accept cannot overrule"],
      ])
      expect(h.writes()).to.equal(0)
    })

    it('only looks when not asked to fix', async () => {
      const h = host(filterSave('DROP'))
      expect((await nftablesBackend(h.runner).forward({fix: false})).drops).to.have.length(1)
      expect(h.writes()).to.equal(0)
    })

    it('says with the drop that its own write failed, without throwing', async () => {
      const h = host(filterSave('DROP'), true)
      const {written, drops} = await nftablesBackend(h.runner).forward({fix: true})
      expect(written).to.equal(0)
      expect(drops).to.have.length(1)
      expect(drops[0]!.fix).to.include("smartnat's own attempt failed: accepting smartnat's connections in iptables' FORWARD: iptables-restore failed on:")
    })

    it('leaves a host without iptables alone', async () => {
      const h = host(new CommandError('iptables-save', ['-t', 'filter'], undefined, ''))
      expect(await nftablesBackend(h.runner).forward({fix: true})).to.deep.equal({written: 0, drops: []})
    })
  })

  it('flush removes it, and only it, with the table', async () => {
    const runner = new RecordingRunner((call) => {
      const line = [call.command, ...call.args].join(' ')
      if (line === 'iptables-save -t filter') return {stdout: filterSave('DROP', OPERATORS, OWNED, DOCKER)}
      if (call.command === 'nft') return {exitCode: 1, stderr: 'Error: No such file or directory'}
      if (call.command === 'ip') return {stdout: '[]'}
      return {}
    })
    const report = await flushNftables(runner, {dryRun: false})
    expect(report).to.include({changed: true})
    expect(report.removed.jumps).to.deep.equal([`filter: ${OWNED}`])
    expect(runner.calls.filter((c) => c.command === 'iptables-restore').map((c) => c.input)).to.deep.equal([restore(OWNED.replace('-A', '-D'))])
  })
})
