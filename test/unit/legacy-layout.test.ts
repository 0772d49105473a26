import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {expect} from 'chai'
import {syncLines} from '../../src/cli/verdicts.js'
import {goControllerLayout} from '../../src/lib/backend/iptables/backend.js'
import {flushOwned} from '../../src/lib/sync/flush.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {diffIptablesState} from '../../src/lib/backend/iptables/diff.js'
import {parseGoIptablesLayout} from '../../src/lib/backend/iptables/legacy-layout.js'
import {goJumpTarget, isGoChainName, isGoRule, isGoSet} from '../../src/lib/backend/iptables/legacy-names.js'
import {isOwnedName} from '../../src/lib/backend/iptables/names.js'
import {parseIptablesSave} from '../../src/lib/backend/iptables/parse.js'
import {iptablesRestorePayload} from '../../src/lib/backend/iptables/payloads.js'
import {emptyIptablesState, type IptablesState} from '../../src/lib/backend/iptables/types.js'
import {goRoutingRemovalPayload, goTableId, parseGoRouting, parseGoRoutingTables, withoutGoTables} from '../../src/lib/routing/legacy.js'

// A Mapping's short name as the Go controller computes it: base32(sha256("default/web"))[:24].
const SHORT = 'QKZ232OQBTIWIKSNIIHGODLM'
const SET_OPTIONS = ['family', 'inet', 'hashsize', '1024', 'maxelem', '65536', 'counters', 'comment', 'bucketsize', '12', 'initval', '0x1']

describe('the Go controller’s layout: what is recognised as its', () => {
  describe('names and rules, Go’s vs smartnat’s vs foreign', () => {
    const chains: {table: string; name: string; go: boolean; smartnat: boolean}[] = [
      {table: 'nat', name: `MAP-${SHORT}`, go: true, smartnat: false},
      {table: 'nat', name: 'SNM-POSTROUTING-SNAT', go: true, smartnat: false},
      {table: 'nat', name: 'SNM-POSTROUTING-MASQ', go: true, smartnat: false},
      // Shared: told apart by their rules (see below), never by the name alone.
      {table: 'nat', name: 'SNM-PREROUTING', go: false, smartnat: true},
      {table: 'nat', name: 'SNM-POSTROUTING', go: false, smartnat: true},
      {table: 'nat', name: 'SNM-A-1a2b3c4d', go: false, smartnat: true},
      {table: 'nat', name: 'SNM-SNAT', go: false, smartnat: true},
      {table: 'nat', name: 'MAP-LOCAL', go: false, smartnat: false},
      {table: 'nat', name: `MAP-${SHORT.toLowerCase()}`, go: false, smartnat: false},
      {table: 'nat', name: `MAP-${SHORT}X`, go: false, smartnat: false},
      {table: 'filter', name: `MAP-${SHORT}`, go: false, smartnat: false},
      {table: 'nat', name: 'KUBE-SERVICES', go: false, smartnat: false},
    ]
    for (const {table, name, go, smartnat} of chains) {
      it(`chain ${table} ${name}: ${go ? 'Go’s' : smartnat ? 'smartnat’s' : 'foreign'}`, () => {
        expect(isGoChainName(table, name)).to.equal(go)
        expect(isOwnedName(name)).to.equal(smartnat)
      })
    }

    const sets: {name: string; type: string; options?: string[]; go: boolean}[] = [
      {name: SHORT, type: 'hash:ip', go: true},
      {name: `DNAT-${SHORT}`, type: 'hash:net,port', go: true},
      {name: SHORT, type: 'hash:net', go: false},
      {name: `DNAT-${SHORT}`, type: 'hash:ip', go: false},
      {name: SHORT, type: 'hash:ip', options: ['family', 'inet', 'maxelem', '65536'], go: false},
      {name: 'DNAT-office', type: 'hash:net,port', go: false},
      {name: 'SNM-ALLOW', type: 'hash:ip,port,net', go: false},
      {name: 'SNM-EGRESS-1', type: 'hash:ip', go: false},
      {name: 'KUBE-CLUSTER-IP', type: 'hash:ip,port', go: false},
    ]
    for (const {name, type, options, go} of sets) {
      it(`set ${name} ${type}${options ? ' without counters and comment' : ''}: ${go ? 'Go’s' : 'not Go’s'}`, () => {
        expect(isGoSet(name, type, options ?? SET_OPTIONS)).to.equal(go)
      })
    }

    const rules: {line: string; go: boolean; jumpsTo?: string}[] = [
      {line: '-A PREROUTING -m comment --comment "\\"for SNM\\"" -j SNM-PREROUTING', go: true, jumpsTo: 'SNM-PREROUTING'},
      {line: `-A SNM-PREROUTING -d 198.18.0.10/32 -m set --match-set DNAT-${SHORT} src,dst -m comment --comment "\\"for mapping default/web\\"" -j MAP-${SHORT}`, go: true},
      {line: `-A MAP-${SHORT} -p tcp -m tcp --dport 8080 -m comment --comment "\\"for mapping default/web [tcp:8080:80]\\"" -j DNAT --to-destination 198.19.100.10:80`, go: true},
      {line: `-A SNM-PREROUTING -m set --match-set ${SHORT} src -m comment --comment "\\"for Maping default/web [${SHORT}] mark 0x803\\"" -j MARK --set-xmark 0x803/0x803`, go: true},
      {line: `-A SNM-POSTROUTING-SNAT -m set --match-set ${SHORT} src -m comment --comment "\\"for Maping default/web [${SHORT}]\\"" -j SNAT --to-source 198.18.0.10`, go: true},
      {line: '-A SNM-POSTROUTING-MASQ -m mark --mark 0x100000/0x100000 -m comment --comment "\\"masquerade traffic marked in PREROUTING rules as destined for services\\"" -j MASQUERADE', go: true},
      {line: `-A MAP-${SHORT} -m comment --comment "\\"mark for masquerade in SNM-POSTROUTING-MASQ\\"" -j MARK --set-xmark 0x100000/0x100000`, go: true},
      {line: '-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING', go: false},
      {line: '-A SNM-A-1a2b3c4d -p tcp -m tcp --dport 80 -m comment --comment "default/web tcp/80" -j DNAT --to-destination 198.19.1.10:8080', go: false},
      {line: '-A LAB-FWD -s 198.18.9.0/24 -m comment --comment "\\"office net\\"" -j ACCEPT', go: false},
      {line: '-A PREROUTING -m comment --comment "for SNM" -j SNM-PREROUTING', go: false},
    ]
    for (const {line, go, jumpsTo} of rules) {
      it(`rule ${line.slice(0, 60)}…: ${go ? 'Go’s' : 'not Go’s'}`, () => {
        expect(isGoRule(line)).to.equal(go)
        expect(goJumpTarget(line)).to.equal(jumpsTo)
      })
    }
  })

  const GO_NAT = [
    '*nat',
    ':PREROUTING ACCEPT [0:0]',
    ':POSTROUTING ACCEPT [0:0]',
    `:MAP-${SHORT} - [0:0]`,
    ':SNM-POSTROUTING-MASQ - [0:0]',
    ':SNM-PREROUTING - [0:0]',
    ':MAP-LOCAL - [0:0]',
    '-A PREROUTING -m comment --comment "\\"for SNM\\"" -j SNM-PREROUTING',
    '-A PREROUTING -d 198.18.0.12/32 -p tcp -m tcp --dport 22 -j MAP-LOCAL',
    '-A POSTROUTING -m comment --comment "\\"for SNM\\"" -j SNM-POSTROUTING-MASQ',
    `-A MAP-${SHORT} -p tcp -m tcp --dport 8080 -m comment --comment "\\"for mapping default/web [tcp:8080:80]\\"" -j DNAT --to-destination 198.19.100.10:80`,
    '-A MAP-LOCAL -p tcp -j DNAT --to-destination 198.18.0.98:22',
    '-A SNM-POSTROUTING-MASQ -m mark --mark 0x100000/0x100000 -m comment --comment "\\"masquerade traffic marked in PREROUTING rules as destined for services\\"" -j MASQUERADE',
    `-A SNM-PREROUTING -d 198.18.0.10/32 -m set --match-set DNAT-${SHORT} src,dst -m comment --comment "\\"for mapping default/web\\"" -j MAP-${SHORT}`,
    'COMMIT',
  ]
  const GO_SETS = [`create ${SHORT} hash:ip ${SET_OPTIONS.join(' ')}`, `create DNAT-${SHORT} hash:net,port ${SET_OPTIONS.join(' ')}`, `add ${SHORT} 198.19.200.11`].join('\n')
  const SMARTNAT_JUMP = '-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING'
  const SMARTNAT_RULE = '-A SNM-PREROUTING -m set ! --match-set SNM-ALLOW dst,dst,src -j RETURN'

  describe('parseGoIptablesLayout', () => {
    it('on a host of the Go controller’s only: its chains (SNM-PREROUTING too), jumps and sets; the foreign MAP-LOCAL stays', () => {
      const layout = parseGoIptablesLayout(GO_NAT.join('\n'), GO_SETS)
      expect(layout.tables.nat.chains).to.deep.equal([`MAP-${SHORT}`, 'SNM-POSTROUTING-MASQ', 'SNM-PREROUTING'])
      expect(layout.tables.nat.jumps).to.have.length(2)
      expect(layout.tables.nat.rules).to.deep.equal([])
      expect(layout.sets).to.deep.equal([`DNAT-${SHORT}`, SHORT])
    })

    it('where smartnat’s SNM-PREROUTING holds a rule of the Go controller’s: that rule, and the chain stays', () => {
      const save = [...GO_NAT.slice(0, -1), SMARTNAT_JUMP, SMARTNAT_RULE, 'COMMIT'].join('\n')
      const layout = parseGoIptablesLayout(save, GO_SETS)
      expect(layout.tables.nat.chains).to.deep.equal([`MAP-${SHORT}`, 'SNM-POSTROUTING-MASQ'])
      expect(layout.tables.nat.rules).to.deep.equal([GO_NAT[13]])
    })

    it('leaves a chain or a set that a rule staying in place still uses', () => {
      const save = [...GO_NAT.slice(0, -1), `-A PREROUTING -s 198.18.9.0/24 -j MAP-${SHORT}`, `-A POSTROUTING -m set --match-set ${SHORT} src -j ACCEPT`, 'COMMIT'].join('\n')
      const layout = parseGoIptablesLayout(save, GO_SETS)
      expect(layout.tables.nat.chains).to.deep.equal(['SNM-POSTROUTING-MASQ', 'SNM-PREROUTING'])
      expect(layout.sets).to.deep.equal([`DNAT-${SHORT}`])
    })

    it('finds nothing in smartnat’s own rules', () => {
      const save = ['*nat', ':PREROUTING ACCEPT [0:0]', ':SNM-PREROUTING - [0:0]', SMARTNAT_JUMP, SMARTNAT_RULE, 'COMMIT'].join('\n')
      const layout = parseGoIptablesLayout(save, 'create SNM-ALLOW hash:ip,port,net family inet hashsize 1024 maxelem 65536')
      expect(layout.tables.nat).to.deep.equal({chains: [], jumps: [], rules: []})
      expect(layout.sets).to.deep.equal([])
    })
  })

  describe('smartnat’s own read-back (parseIptablesSave) claims nothing of the Go controller’s', () => {
    it('neither its jumps, its chains, nor an SNM-PREROUTING of its rules only', () => {
      const parsed = parseIptablesSave(GO_NAT.join('\n'))
      expect(parsed.nat.chains).to.deep.equal([])
      expect(parsed.nat.jumps).to.deep.equal([])
    })

    it('but an SNM-PREROUTING that smartnat jumps to is smartnat’s, the Go controller’s rules and jump in it included (a sync rewrites them)', () => {
      const parsed = parseIptablesSave([...GO_NAT.slice(0, -1), SMARTNAT_JUMP, SMARTNAT_RULE, 'COMMIT'].join('\n'))
      expect(parsed.nat.chains.map((c) => c.name)).to.deep.equal(['SNM-PREROUTING'])
      expect(parsed.nat.chains[0]!.rules).to.deep.equal([GO_NAT[13], SMARTNAT_RULE])
      expect(parsed.nat.jumps).to.deep.equal([SMARTNAT_JUMP, GO_NAT[7]])
    })
  })

  describe('iptablesRestorePayload with the Go controller’s layout', () => {
    const layout = parseGoIptablesLayout(GO_NAT.join('\n'), GO_SETS)

    it('alone (flush --legacy): empties its chains, deletes its jumps, then its chains', () => {
      const none = diffIptablesState(emptyIptablesState(), emptyIptablesState())
      expect(iptablesRestorePayload(none, layout).split('\n')).to.deep.equal([
        '*nat',
        `:MAP-${SHORT} - [0:0]`,
        ':SNM-POSTROUTING-MASQ - [0:0]',
        ':SNM-PREROUTING - [0:0]',
        '-D PREROUTING -m comment --comment "\\"for SNM\\"" -j SNM-PREROUTING',
        '-D POSTROUTING -m comment --comment "\\"for SNM\\"" -j SNM-POSTROUTING-MASQ',
        `-X MAP-${SHORT}`,
        '-X SNM-POSTROUTING-MASQ',
        '-X SNM-PREROUTING',
        'COMMIT',
        '',
      ])
    })

    it('with a sync (--migrate): the SNM-PREROUTING smartnat declares is refilled, not deleted, in the same table transaction', () => {
      const desired: IptablesState = emptyIptablesState()
      desired.tables.nat = {chains: [{name: 'SNM-PREROUTING', rules: [SMARTNAT_RULE]}], jumps: [SMARTNAT_JUMP]}
      const payload = iptablesRestorePayload(diffIptablesState(desired, emptyIptablesState()), layout).split('\n')
      expect(payload).to.deep.equal([
        '*nat',
        ':SNM-PREROUTING - [0:0]',
        `:MAP-${SHORT} - [0:0]`,
        ':SNM-POSTROUTING-MASQ - [0:0]',
        '-D PREROUTING -m comment --comment "\\"for SNM\\"" -j SNM-PREROUTING',
        '-D POSTROUTING -m comment --comment "\\"for SNM\\"" -j SNM-POSTROUTING-MASQ',
        SMARTNAT_RULE,
        '-I PREROUTING 1 -m comment --comment smartnat -j SNM-PREROUTING',
        `-X MAP-${SHORT}`,
        '-X SNM-POSTROUTING-MASQ',
        'COMMIT',
        '',
      ])
    })
  })

  it('iptablesRestorePayload deletes a Go jump into smartnat’s chain once, though both smartnat’s diff and the Go layout name it', () => {
    const save = [...GO_NAT.slice(0, -1), SMARTNAT_JUMP, SMARTNAT_RULE, 'COMMIT'].join('\n')
    const actual: IptablesState = emptyIptablesState()
    actual.tables.nat = parseIptablesSave(save).nat
    const desired: IptablesState = emptyIptablesState()
    desired.tables.nat = {chains: [{name: 'SNM-PREROUTING', rules: [SMARTNAT_RULE]}], jumps: [SMARTNAT_JUMP]}
    const payload = iptablesRestorePayload(diffIptablesState(desired, actual), parseGoIptablesLayout(save, GO_SETS)).split('\n')
    expect(payload.filter((line) => line === `-D ${GO_NAT[7]!.slice(3)}`)).to.have.length(1)
    expect(payload).to.include(':SNM-PREROUTING - [0:0]')
    expect(payload.filter((line) => line.startsWith('-D SNM-PREROUTING'))).to.deep.equal([])
  })

  describe('routing', () => {
    // Computed apart from the code under test, as the Go controller does: MD5 bytes 0..3, byte 3 >> 1, byte 0 | 1, little-endian.
    for (const [name, id] of [['eth1', 1687754607], ['eth2', 797188321], ['bond0.100', 1113640119]] as const) {
      it(`the table id of ${name} is ${id}`, () => expect(goTableId(name)).to.equal(id))
    }

    const RT_TABLES = '#\n255\tlocal\n254\tmain\n100 office\n1687754607 eth1\n797188321 eth2\n12345 eth3\n'

    it('only an rt_tables line whose id is derived from its name is the Go controller’s', () => {
      expect(parseGoRoutingTables(RT_TABLES).map((t) => t.line)).to.deep.equal(['1687754607 eth1', '797188321 eth2'])
      expect(withoutGoTables(RT_TABLES, parseGoRoutingTables(RT_TABLES))).to.equal('#\n255\tlocal\n254\tmain\n100 office\n12345 eth3\n')
    })

    it('its ip rules (`from` one address, or a bare fwmark, to its table, by name or id) and its tables’ routes; nothing else', () => {
      const rules = [
        {priority: 0, src: 'all', table: 'local'},
        {priority: 500, src: '198.18.9.0', srclen: 24, table: '100'},
        {priority: 32760, src: 'all', fwmark: '0x803', table: 'eth1'},
        {priority: 32761, src: '198.18.0.10', table: '1687754607'},
        {priority: 32762, src: '198.18.0.0', srclen: 24, table: 'eth1'},
        {priority: 32763, src: 'all', fwmark: '0x803', fwmask: '0xfff', table: 'eth1'},
        {priority: 32764, src: '198.18.0.11', iif: 'eth0', table: 'eth1'},
        {priority: 32765, src: '198.18.0.12', table: '12345'},
      ]
      const routes = [
        {dst: 'default', gateway: '198.18.0.1', dev: 'eth1', table: 'eth1'},
        {dst: '198.18.0.0/24', dev: 'eth1', scope: 'link', table: '1687754607'},
        {dst: 'default', gateway: '198.18.0.1', dev: 'eth1', table: '100'},
        {dst: 'default', gateway: '198.18.0.1', dev: 'eth1'},
      ]
      const routing = parseGoRouting(RT_TABLES, rules, routes)
      expect(goRoutingRemovalPayload(routing).split('\n')).to.deep.equal([
        'rule del priority 32760 fwmark 0x803 table 1687754607',
        'rule del priority 32761 from 198.18.0.10 table 1687754607',
        'route del default table 1687754607',
        'route del 198.18.0.0/24 table 1687754607',
        '',
      ])
    })
  })

  describe('flush --legacy (flushOwned over the Go controller’s layout)', () => {
    let dir: string
    let rtTables: string
    const RT_TABLES = '255\tlocal\n100 office\n1687754607 eth1\n'
    const KERNEL: Record<string, string> = {
      'iptables-save': GO_NAT.join('\n'),
      'ipset save': GO_SETS,
      'ip -4 -j rule show': '[{"priority":500,"src":"all","fwmark":"0x801","table":"100"},{"priority":32764,"src":"all","fwmark":"0x803","table":"eth1"}]',
      'ip -4 -j route show table all': '[{"dst":"default","gateway":"198.18.0.1","dev":"eth1","table":"eth1"}]',
    }
    const kernel = () => new RecordingRunner((call) => ({stdout: KERNEL[[call.command, ...call.args].join(' ')] ?? ''}))
    const writes = (runner: RecordingRunner) => runner.calls.filter((c) => c.input !== undefined).map((c) => `${c.command} ${c.args.join(' ')}`)

    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'smartnat-legacy-'))
      rtTables = join(dir, 'rt_tables')
      await writeFile(rtTables, RT_TABLES)
    })

    afterEach(async () => {
      await rm(dir, {recursive: true, force: true})
    })

    it('on a host without iptables or ipset (nftables only) finds their part empty and still reads the routing', async () => {
      const notFound = Object.assign(new Error('spawn iptables-save ENOENT'), {code: 'ENOENT'})
      const runner = new RecordingRunner((call) =>
        call.command === 'ip' ? {stdout: KERNEL[[call.command, ...call.args].join(' ')] ?? ''} : new CommandError(call.command, call.args, undefined, '', {cause: notFound}),
      )
      const report = await goControllerLayout(runner).flush({rtTables, dryRun: true})
      expect(report.removed.chains).to.deep.equal([])
      expect(report.removed.rtTables).to.deep.equal(['1687754607 eth1'])
    })

    it('a "no" writes nothing, rt_tables included, and reports every kind empty', async () => {
      const runner = kernel()
      const layout = goControllerLayout(runner)
      const outcome = await flushOwned({flush: ({dryRun}) => layout.flush({rtTables, dryRun})}, {dryRun: false, lock: {path: join(dir, 'lock')}, confirm: async () => false})
      expect(outcome).to.deep.equal({dryRun: false, changed: false, declined: true, removed: {jumps: [], chains: [], rules: [], sets: [], ipRules: [], routes: [], rtTables: []}})
      expect(writes(runner)).to.deep.equal([])
      expect(await readFile(rtTables, 'utf8')).to.equal(RT_TABLES)
    })

    it('a "yes" runs one iptables-restore, one ipset restore and one ip batch, then takes its line out of rt_tables', async () => {
      const runner = kernel()
      const layout = goControllerLayout(runner)
      const outcome = await flushOwned({flush: ({dryRun}) => layout.flush({rtTables, dryRun})}, {dryRun: false, lock: {path: join(dir, 'lock')}, confirm: async () => true})
      expect(outcome.removed.ipRules).to.deep.equal(['priority 32764 fwmark 0x803 table 1687754607'])
      expect(outcome.removed.rtTables).to.deep.equal(['1687754607 eth1'])
      expect(writes(runner)).to.deep.equal(['iptables-restore --noflush --wait', 'ipset restore -exist', 'ip -batch -'])
      expect(runner.calls.find((c) => c.command === 'ipset' && c.input)!.input).to.equal(`destroy DNAT-${SHORT}\ndestroy ${SHORT}\n`)
      expect(await readFile(rtTables, 'utf8')).to.equal('255\tlocal\n100 office\n')
    })
  })

  describe('sync --migrate’s summary', () => {
    const output = {dryRun: false, mappings: [], configured: 0, invalid: 0, faulty: 0, faults: [], changed: true, written: {sets: 0, chains: 0, rules: 0, routes: 0}, conntrackDeleted: 0}
    const none = {jumps: [], chains: [], rules: [], sets: [], ipRules: [], routes: [], rtTables: []}

    it('counts what of the Go controller’s was removed, kind by kind', () => {
      const legacyRemoved = {...none, jumps: ['a', 'b'], chains: ['c'], sets: ['d'], rtTables: ['e']}
      expect(syncLines({...output, legacyRemoved}).at(-1)).to.equal('removed the Go controller’s 2 jumps, 1 chain, 1 ipset, 1 rt_tables entry')
    })

    it('says when there was nothing, and says nothing without --migrate', () => {
      expect(syncLines({...output, legacyRemoved: none}).at(-1)).to.equal('nothing of the Go controller’s was left on this host')
      expect(syncLines(output).some((line) => line.includes('Go controller'))).to.equal(false)
    })
  })
})
