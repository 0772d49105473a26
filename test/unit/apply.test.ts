import {expect} from 'chai'
import {CommandError, type RunResult} from '../../src/lib/host/runner.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'
import {ApplyError} from '../../src/lib/backend/result.js'
import {payloadContext} from '../../src/lib/backend/apply-steps.js'
import {applyIptables, culpritLine, failedLine} from '../../src/lib/backend/iptables/apply.js'
import {flushIptables} from '../../src/lib/backend/iptables/flush.js'
import {readIptablesState} from '../../src/lib/backend/iptables/read.js'
import type {IptablesState} from '../../src/lib/backend/iptables/types.js'
import {IPSET_SAVE, IPTABLES_SAVE, IP_ROUTE_JSON, IP_RULE_JSON} from './fixtures/kernel-capture.js'

type Answer = Partial<RunResult> | Error

/** A kernel that prints the captured state when read and accepts (or, per `writes`, refuses) every write. */
function fakeKernel(writes: (call: RecordedCall) => Answer = () => ({}), iptablesSave = IPTABLES_SAVE): RecordingRunner {
  return new RecordingRunner((call) => {
    const line = [call.command, ...call.args].join(' ')
    if (line === 'iptables-save') return {stdout: iptablesSave}
    if (line === 'ipset save') return {stdout: IPSET_SAVE}
    if (line === 'ip -4 -j rule show') return {stdout: IP_RULE_JSON}
    if (line === 'ip -4 -j route show table all') return {stdout: IP_ROUTE_JSON}
    return writes(call)
  })
}

const READS = ['iptables-save', 'ipset save', 'ip -4 -j rule show', 'ip -4 -j route show table all']

function writesOf(runner: RecordingRunner): RecordedCall[] {
  return runner.calls.filter((c) => !READS.includes([c.command, ...c.args].join(' ')))
}

function commandLines(calls: RecordedCall[]): string[] {
  return calls.map((c) => [c.command, ...c.args].join(' '))
}

/** The iptables-restore payload that moves the DNS rule of SNM-A-1a2b3c4d (its second) from one DNAT target to another. */
function dnsTargetEdit(from: string, to: string): string {
  const rule = (target: string) => `SNM-A-1a2b3c4d -p udp -m udp --dport 53 -m comment --comment "kube-system/dns udp/53" -j DNAT --to-destination ${target}`
  return ['*nat', `-D ${rule(from)}`, `-I ${rule(to).replace(' -p', ' 2 -p')}`, 'COMMIT', ''].join('\n')
}

/** The captured kernel state as a desired state, to be edited by each case. */
async function capturedState(): Promise<IptablesState> {
  return readIptablesState(fakeKernel())
}

function chain(state: IptablesState, table: keyof IptablesState['tables'], name: string) {
  const found = state.tables[table].chains.find((c) => c.name === name)
  if (!found) throw new Error(`no chain ${name}`)
  return found
}

function failing(stderr: string): Error {
  return new CommandError('iptables-restore', ['--noflush', '--wait'], 2, stderr)
}

describe('applyIptables', () => {
  it('writes nothing when the kernel already matches', async () => {
    const runner = fakeKernel()
    const result = await applyIptables(runner, await capturedState())
    expect(result).to.deep.equal({changed: false, written: {sets: 0, chains: 0, rules: 0, routes: 0}, changedEndpoints: []})
    expect(commandLines(runner.calls).sort()).to.deep.equal([...READS].sort())
  })

  it('ignores set options the kernel picks itself (hashsize, bucketsize)', async () => {
    const desired = await capturedState()
    for (const set of desired.sets) set.options = 'family inet hashsize 4096 maxelem 65536'
    const runner = fakeKernel()
    expect((await applyIptables(runner, desired)).changed).to.equal(false)
    expect(writesOf(runner)).to.deep.equal([])
  })

  it('adds a new address chain, its dispatch rule and a new set, leaving unchanged chains undeclared', async () => {
    const desired = await capturedState()
    desired.tables.nat.chains.push({
      name: 'SNM-A-99887766',
      rules: ['-A SNM-A-99887766 -p tcp -m tcp --dport 443 -m comment --comment "default/tls tcp/443" -j DNAT --to-destination 198.19.1.20:443'],
    })
    chain(desired, 'nat', 'SNM-PREROUTING').rules.push('-A SNM-PREROUTING -d 198.18.0.3/32 -j SNM-A-99887766')
    desired.sets.push({name: 'SNM-EG-0badcafe', type: 'hash:ip', options: 'family inet hashsize 1024 maxelem 65536', entries: ['198.19.2.1', '198.19.2.2']})
    const runner = fakeKernel()
    const result = await applyIptables(runner, desired)

    const writes = writesOf(runner)
    expect(commandLines(writes)).to.deep.equal(['ipset restore -exist', 'iptables-restore --noflush --wait'])
    expect(writes[0]!.input).to.equal(
      'create SNM-EG-0badcafe hash:ip family inet hashsize 1024 maxelem 65536\nadd SNM-EG-0badcafe 198.19.2.1\nadd SNM-EG-0badcafe 198.19.2.2\n',
    )
    expect(writes[1]!.input).to.equal(
      [
        '*nat',
        ':SNM-PREROUTING - [0:0]',
        ':SNM-A-99887766 - [0:0]',
        '-A SNM-PREROUTING -m set ! --match-set SNM-ALLOW dst,dst,src -j RETURN',
        '-A SNM-PREROUTING -j MARK --set-xmark 0x80000/0x80000',
        '-A SNM-PREROUTING -i ext0 -j CONNMARK --set-xmark 0x100000/0xff40000',
        '-A SNM-PREROUTING -d 198.18.0.2/32 -j SNM-A-1a2b3c4d',
        '-A SNM-PREROUTING -d 198.18.0.3/32 -j SNM-A-99887766',
        '-A SNM-A-99887766 -p tcp -m tcp --dport 443 -m comment --comment "default/tls tcp/443" -j DNAT --to-destination 198.19.1.20:443',
        'COMMIT',
        '',
      ].join('\n'),
    )
    expect(result).to.deep.equal({changed: true, written: {sets: 1, chains: 2, rules: 6, routes: 0}, changedEndpoints: []})
  })

  it('refills a changed set under its temporary name, swaps it in and destroys the old content afterwards', async () => {
    const desired = await capturedState()
    desired.sets[1]!.entries = ['198.18.0.2,tcp:80']
    const runner = fakeKernel()
    const result = await applyIptables(runner, desired)
    const writes = writesOf(runner)
    expect(commandLines(writes)).to.deep.equal(['ipset restore -exist', 'ipset restore -exist'])
    expect(writes[0]!.input).to.equal(
      [
        'destroy SNM-ENDPOINTS-T',
        'create SNM-ENDPOINTS-T hash:ip,port family inet hashsize 1024 maxelem 65536 bucketsize 12',
        'add SNM-ENDPOINTS-T 198.18.0.2,tcp:80',
        'swap SNM-ENDPOINTS-T SNM-ENDPOINTS',
        '',
      ].join('\n'),
    )
    expect(writes[1]!.input).to.equal('destroy SNM-ENDPOINTS-T\n')
    expect(result.written).to.deep.equal({sets: 1, chains: 0, rules: 0, routes: 0})
  })

  it('removes a stale chain after its jump, destroys a stale set after iptables-restore, and reports the removed endpoint', async () => {
    const desired = await capturedState()
    desired.tables.nat.chains = desired.tables.nat.chains.filter((c) => c.name !== 'SNM-POSTROUTING')
    desired.tables.nat.jumps = ['-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING']
    chain(desired, 'nat', 'SNM-A-1a2b3c4d').rules.pop()
    desired.tables.filter = {chains: [], jumps: []}
    desired.sets = desired.sets.filter((s) => s.name !== 'SNM-ENDPOINTS')
    const runner = fakeKernel()
    const result = await applyIptables(runner, desired)

    const writes = writesOf(runner)
    expect(commandLines(writes)).to.deep.equal(['iptables-restore --noflush --wait', 'ipset restore -exist'])
    expect(writes[0]!.input).to.equal(
      [
        '*nat',
        ':SNM-POSTROUTING - [0:0]',
        '-D POSTROUTING -m comment --comment smartnat -j SNM-POSTROUTING',
        // The address chain keeps its other rule: only the stale one is deleted.
        '-D SNM-A-1a2b3c4d -p udp -m udp --dport 53 -m comment --comment "kube-system/dns udp/53" -j DNAT --to-destination 198.19.1.11:53',
        '-X SNM-POSTROUTING',
        'COMMIT',
        '*filter',
        ':SNM-FORWARD - [0:0]',
        ':SNM-INPUT - [0:0]',
        '-D INPUT -m comment --comment smartnat -j SNM-INPUT',
        '-D FORWARD -m comment --comment smartnat -j SNM-FORWARD',
        '-X SNM-FORWARD',
        '-X SNM-INPUT',
        'COMMIT',
        '',
      ].join('\n'),
    )
    expect(writes[1]!.input).to.equal('destroy SNM-ENDPOINTS\n')
    expect(result.changedEndpoints).to.deep.equal([{address: '198.18.0.2', protocol: 'udp', port: 53, oldTarget: '198.19.1.11:53'}])
  })

  it('reports an endpoint whose DNAT target changed, with the old target', async () => {
    const desired = await capturedState()
    const rules = chain(desired, 'nat', 'SNM-A-1a2b3c4d').rules
    rules[0] = rules[0]!.replace('198.19.1.10:8080', '198.19.1.99:8080')
    const result = await applyIptables(fakeKernel(), desired)
    expect(result.changedEndpoints).to.deep.equal([{address: '198.18.0.2', protocol: 'tcp', port: 80, oldTarget: '198.19.1.10:8080'}])
  })

  it('inserts a missing jump at position 1 and deletes a surplus copy of one, touching no other rule', async () => {
    const desired = await capturedState()
    const duplicated = IPTABLES_SAVE.replace(
      '-A INPUT -m comment --comment smartnat -j SNM-INPUT\n',
      '-A INPUT -m comment --comment smartnat -j SNM-INPUT\n-A INPUT -m comment --comment smartnat -j SNM-INPUT\n',
    ).replace('-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING\n-A SNM-PREROUTING -m connmark', '-A SNM-PREROUTING -m connmark')
    const runner = fakeKernel(() => ({}), duplicated)
    const result = await applyIptables(runner, desired)
    expect(writesOf(runner).map((c) => c.input)).to.deep.equal([
      [
        '*mangle',
        '-I PREROUTING 1 -m comment --comment smartnat -j SNM-PREROUTING',
        'COMMIT',
        '*filter',
        '-D INPUT -m comment --comment smartnat -j SNM-INPUT',
        'COMMIT',
        '',
      ].join('\n'),
    ])
    expect(result.written).to.deep.equal({sets: 0, chains: 0, rules: 2, routes: 0})
  })

  it('adds missing ip rules and routes and deletes stale ones in smartnat\'s tables, in one ip -batch', async () => {
    const desired = await capturedState()
    desired.ipRules = [{priority: 7002, fwmark: '0x200000/0xff00000', table: 7002}]
    desired.routes = [
      {table: 7001, dst: 'default', dev: 'ext0', via: '198.18.0.254'},
      {table: 7002, dst: '198.18.1.0/24', dev: 'ext1', src: '198.18.1.2', scope: 'link'},
    ]
    const runner = fakeKernel()
    const result = await applyIptables(runner, desired)
    const writes = writesOf(runner)
    expect(commandLines(writes)).to.deep.equal(['ip -batch -'])
    expect(writes[0]!.input).to.equal(
      [
        'route replace default via 198.18.0.254 dev ext0 table 7001',
        'route replace 198.18.1.0/24 dev ext1 scope link src 198.18.1.2 table 7002',
        'rule add priority 7002 fwmark 0x200000/0xff00000 table 7002',
        'rule del priority 7001 fwmark 0x100000/0xff00000 table 7001',
        'route del 198.18.0.0/24 table 7001',
        '',
      ].join('\n'),
    )
    expect(result.written.routes).to.equal(5)
  })

  it('rewrites every desired chain and set when asked for a full apply', async () => {
    const runner = fakeKernel()
    const result = await applyIptables(runner, await capturedState(), {full: true})
    expect(result.written).to.deep.equal({sets: 2, chains: 6, rules: 10, routes: 0})
    const restore = writesOf(runner).find((c) => c.command === 'iptables-restore')!
    expect(restore.input).to.include(':SNM-FORWARD - [0:0]').and.not.include('-I ').and.not.include('-D ')
  })

  it('names the failing payload line with context, swaps the old set contents back and forces a full sync', async () => {
    const desired = await capturedState()
    desired.sets[1]!.entries = ['198.18.0.2,tcp:80']
    chain(desired, 'filter', 'SNM-INPUT').rules.push('-A SNM-INPUT -j BOGUS')
    const stderr = "iptables-restore v1.8.9 (nf_tables): Chain 'BOGUS' does not exist\nError occurred at line: 5\nTry `iptables-restore -h' for more information."
    const runner = fakeKernel((call) => (call.command === 'iptables-restore' ? failing(stderr) : {}))
    const error = await applyIptables(runner, desired).then(
      () => expect.fail('apply succeeded'),
      (e: unknown) => e,
    )
    expect(error).to.be.instanceOf(ApplyError)
    const failure = error as ApplyError
    expect(failure.step).to.equal('iptables-restore')
    expect(failure.forceFull).to.equal(true)
    expect(failure.cause).to.be.instanceOf(CommandError)
    expect(failure.message).to.equal(
      [
        'iptables-restore: iptables-restore failed at payload line 4 (reported as line 5): "-A SNM-INPUT -j BOGUS"',
        '     1: *filter',
        '     2: :SNM-INPUT - [0:0]',
        '     3: -A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP',
        '>    4: -A SNM-INPUT -j BOGUS',
        '     5: COMMIT',
        stderr,
      ].join('\n'),
    )
    const writes = writesOf(runner)
    // No set is created: iptables-restore and ipset restore ran at once, then the sets were put back.
    expect(commandLines(writes)).to.deep.equal(['iptables-restore --noflush --wait', 'ipset restore -exist', 'ipset restore -exist'])
    expect(writes[2]!.input).to.equal('swap SNM-ENDPOINTS-T SNM-ENDPOINTS\ndestroy SNM-ENDPOINTS-T\n')
  })

  describe('when iptables-restore fails after earlier tables committed', () => {
    const NEW_CHAIN = 'SNM-A-99887766'
    const NEW_RULE = `-A ${NEW_CHAIN} -p tcp -m tcp --dport 443 -m comment --comment "default/tls tcp/443" -j DNAT --to-destination 198.19.1.20:443`
    const NEW_DISPATCH = `-A SNM-PREROUTING -d 198.18.0.3/32 -j ${NEW_CHAIN}`
    /** A new Mapping (nat chain, dispatch rule, set entries refilled) and a filter rule the kernel refuses. */
    async function desiredWithBadFilter(): Promise<IptablesState> {
      const desired = await capturedState()
      desired.tables.nat.chains.push({name: NEW_CHAIN, rules: [NEW_RULE]})
      chain(desired, 'nat', 'SNM-PREROUTING').rules.push(NEW_DISPATCH)
      desired.sets[1]!.entries = ['198.18.0.3,tcp:443']
      chain(desired, 'filter', 'SNM-INPUT').rules.push('-A SNM-INPUT -j BOGUS')
      return desired
    }
    // What iptables-save prints once the nat part of that payload committed and the filter part did not.
    const NAT_COMMITTED = IPTABLES_SAVE.replace(':SNM-POSTROUTING - [0:0]', `:SNM-POSTROUTING - [0:0]\n:${NEW_CHAIN} - [0:0]`).replace(
      '-A SNM-PREROUTING -d 198.18.0.2/32 -j SNM-A-1a2b3c4d\n',
      `-A SNM-PREROUTING -d 198.18.0.2/32 -j SNM-A-1a2b3c4d\n${NEW_DISPATCH}\n${NEW_RULE}\n`,
    )
    const FILTER_FAILED = "iptables-restore v1.8.9 (nf_tables): Chain 'BOGUS' does not exist\nError occurred at line: 20\n"

    /** The fake kernel: the first restore commits the nat part and fails; so does the rollback when `rollbackFails`. */
    function partlyCommitting(rollbackFails: boolean): RecordingRunner {
      let restores = 0
      return new RecordingRunner((call) => {
        const line = [call.command, ...call.args].join(' ')
        if (line === 'iptables-save') return {stdout: restores > 0 ? NAT_COMMITTED : IPTABLES_SAVE}
        if (line === 'ipset save') return {stdout: IPSET_SAVE}
        if (line === 'ip -4 -j rule show') return {stdout: IP_RULE_JSON}
        if (line === 'ip -4 -j route show table all') return {stdout: IP_ROUTE_JSON}
        if (call.command !== 'iptables-restore') return {}
        return ++restores === 1 || rollbackFails ? failing(FILTER_FAILED) : {}
      })
    }

    it('puts the tables that committed back first, then the old set contents', async () => {
      const runner = partlyCommitting(false)
      const error = (await applyIptables(runner, await desiredWithBadFilter()).catch((e: unknown) => e)) as ApplyError
      expect(error).to.be.instanceOf(ApplyError)
      expect(error.step).to.equal('iptables-restore')
      expect(error.message).to.include("Chain 'BOGUS' does not exist").and.not.include('also failed')
      // The kernel is read again after the failure: only that tells which tables committed.
      expect(commandLines(runner.calls.slice(-5))).to.deep.equal([
        'iptables-restore --noflush --wait',
        'ipset restore -exist',
        'iptables-save',
        'iptables-restore --noflush --wait',
        'ipset restore -exist',
      ])
      const [, , , rollback, sets] = runner.calls.slice(-5)
      expect(rollback!.input).to.equal(
        [
          '*nat',
          ':SNM-PREROUTING - [0:0]',
          `:${NEW_CHAIN} - [0:0]`,
          ...chain(await capturedState(), 'nat', 'SNM-PREROUTING').rules,
          `-X ${NEW_CHAIN}`,
          'COMMIT',
          '',
        ].join('\n'),
      )
      expect(sets!.input).to.equal('swap SNM-ENDPOINTS-T SNM-ENDPOINTS\ndestroy SNM-ENDPOINTS-T\n')
    })

    it('when the tables cannot be put back, leaves the new sets under the new rules and says so', async () => {
      const runner = partlyCommitting(true)
      const error = (await applyIptables(runner, await desiredWithBadFilter()).catch((e: unknown) => e)) as ApplyError
      expect(error.step).to.equal('iptables-restore')
      expect(error.message).to.include('putting back the tables iptables-restore had committed also failed: iptables-restore rollback: ')
      expect(error.message).to.include('the sets keep their new contents, as the new rules use them; the next sync rewrites everything')
      expect(commandLines(writesOf(runner))).to.deep.equal(['iptables-restore --noflush --wait', 'ipset restore -exist', 'iptables-restore --noflush --wait'])
    })
  })

  it('rolls back only the swaps that ran when ipset restore fails part way, and removes the sets it created', async () => {
    const desired = await capturedState()
    desired.sets[0]!.entries = ['198.18.0.2,tcp:80,198.19.0.0/16']
    desired.sets[1]!.entries = ['198.18.0.2,tcp:80']
    desired.sets.push({name: 'SNM-EG-0badcafe', type: 'hash:ip', options: 'family inet', entries: []})
    let ipsetCalls = 0
    const runner = fakeKernel((call) => {
      if (call.command !== 'ipset' || ipsetCalls++ > 0) return {}
      const lines = call.input!.split('\n')
      const secondSwap = lines.lastIndexOf('swap SNM-ENDPOINTS-T SNM-ENDPOINTS') + 1
      return new CommandError('ipset', ['restore', '-exist'], 1, `ipset v7.17: Error in line ${secondSwap}: The sets cannot be swapped`)
    })
    const error = (await applyIptables(runner, desired).catch((e: unknown) => e)) as ApplyError
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.step).to.equal('ipset prepare')
    expect(error.message).to.include('"swap SNM-ENDPOINTS-T SNM-ENDPOINTS"')
    const writes = writesOf(runner)
    expect(commandLines(writes)).to.deep.equal(['ipset restore -exist', 'ipset restore -exist'])
    expect(writes[1]!.input).to.equal(
      ['swap SNM-ALLOW-T SNM-ALLOW', 'destroy SNM-ALLOW-T', 'destroy SNM-ENDPOINTS-T', 'destroy SNM-EG-0badcafe', ''].join('\n'),
    )
  })

  it('refuses a set whose type changed before writing anything', async () => {
    const desired = await capturedState()
    desired.sets[1]!.type = 'hash:ip'
    const runner = fakeKernel()
    const error = (await applyIptables(runner, desired).catch((e: unknown) => e)) as ApplyError
    expect(error.message).to.equal('ipset: SNM-ENDPOINTS is hash:ip,port, must be hash:ip; run "smartnat flush" and sync again')
    expect(writesOf(runner)).to.deep.equal([])
  })

  it('writes nothing when a desired line cannot be turned into a payload', async () => {
    const desired = await capturedState()
    desired.sets[1]!.entries = ['198.18.0.2,tcp:80']
    desired.tables.nat.jumps.push('PREROUTING -j SNM-PREROUTING')
    const runner = fakeKernel()
    const error = (await applyIptables(runner, desired).catch((e: unknown) => e)) as ApplyError
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.message).to.equal('build payloads: not a rule line as iptables-save prints it: "PREROUTING -j SNM-PREROUTING"')
    expect(writesOf(runner)).to.deep.equal([])
  })

  it('trusts the state it is given instead of reading the kernel, and writes the difference from it', async () => {
    const applied = await capturedState()
    const desired = structuredClone(applied)
    const rules = chain(desired, 'nat', 'SNM-A-1a2b3c4d').rules
    rules[1] = rules[1]!.replace('198.19.1.11:53', '198.19.1.12:53')
    const runner = fakeKernel()
    const result = await applyIptables(runner, desired, {assumeActual: applied})
    expect(commandLines(runner.calls)).to.deep.equal(['iptables-restore --noflush --wait'])
    expect(runner.calls[0]!.input).to.equal(dnsTargetEdit('198.19.1.11:53', '198.19.1.12:53'))
    expect(result.changedEndpoints).to.deep.equal([{address: '198.18.0.2', protocol: 'udp', port: 53, oldTarget: '198.19.1.11:53'}])
  })

  it('runs nothing at all when the desired state equals the trusted one', async () => {
    const runner = fakeKernel()
    const result = await applyIptables(runner, await capturedState(), {assumeActual: await capturedState()})
    expect(result.changed).to.equal(false)
    expect(runner.calls).to.deep.equal([])
  })

  it('reads the kernel for a full apply even when given a state to trust', async () => {
    const runner = fakeKernel()
    await applyIptables(runner, await capturedState(), {full: true, assumeActual: await capturedState()})
    expect(commandLines(runner.calls).filter((c) => READS.includes(c)).sort()).to.deep.equal([...READS].sort())
  })

  it('diffs against a read the caller started instead of reading the kernel again', async () => {
    const desired = await capturedState()
    const rules = chain(desired, 'nat', 'SNM-A-1a2b3c4d').rules
    rules[1] = rules[1]!.replace('198.19.1.11:53', '198.19.1.12:53')
    const runner = fakeKernel()
    await applyIptables(runner, desired, {kernelRead: capturedState()})
    expect(commandLines(runner.calls)).to.deep.equal(['iptables-restore --noflush --wait'])
  })

  it('fails the read step when the read the caller started failed, writing nothing', async () => {
    const runner = fakeKernel()
    const read = Promise.reject(new Error('reading kernel state: iptables-save failed'))
    const error = (await applyIptables(runner, await capturedState(), {full: true, kernelRead: read}).catch((e: unknown) => e)) as ApplyError
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.message).to.equal('read: reading kernel state: iptables-save failed')
    expect(runner.calls).to.deep.equal([])
  })

  it('counts a set updated in place as a set written', async () => {
    const desired = await capturedState()
    desired.sets[0]!.entries = [...desired.sets[0]!.entries, '198.18.0.2,tcp:80,198.19.9.9'].sort()
    const runner = fakeKernel()
    const result = await applyIptables(runner, desired)
    expect(writesOf(runner)[0]!.input).to.equal('add SNM-ALLOW 198.18.0.2,tcp:80,198.19.9.9\n')
    expect(result.written).to.deep.equal({sets: 1, chains: 0, rules: 0, routes: 0})
  })

  describe('the ipset and iptables-restore runs', () => {
    /** A fake kernel whose ipset restore runs until `release()`; `started` lists the writes begun so far. */
    function heldSets(writes: (call: RecordedCall) => Answer = () => ({}), iptablesSave: () => string = () => IPTABLES_SAVE) {
      let release = () => {}
      const held = new Promise<void>((resolve) => (release = resolve))
      const inner = new RecordingRunner((call) => {
        const line = [call.command, ...call.args].join(' ')
        if (line === 'iptables-save') return {stdout: iptablesSave()}
        return writes(call)
      })
      const started: string[] = []
      const runner = {
        calls: inner.calls,
        async run(command: string, args: string[], options?: {input?: string}): Promise<RunResult> {
          started.push([command, ...args].join(' '))
          if (command === 'ipset' && started.filter((s) => s.startsWith('ipset')).length === 1) await held
          return inner.run(command, args, options)
        },
      }
      return {runner, started, release}
    }

    /** The captured state with one DNAT target changed and one allowed source added: no set is created. */
    async function changedMapping(): Promise<IptablesState> {
      const desired = await capturedState()
      const rules = chain(desired, 'nat', 'SNM-A-1a2b3c4d').rules
      rules[1] = rules[1]!.replace('198.19.1.11:53', '198.19.1.12:53')
      desired.sets[0]!.entries = [...desired.sets[0]!.entries, '198.18.0.2,tcp:80,198.19.9.9'].sort()
      return desired
    }

    const settle = () => new Promise((resolve) => setImmediate(resolve))

    it('go at once when no set is created, iptables-restore (the longer run) started first', async () => {
      const {runner, started, release} = heldSets()
      const applying = applyIptables(runner, await changedMapping(), {assumeActual: await capturedState()})
      await settle()
      expect(started).to.deep.equal(['iptables-restore --noflush --wait', 'ipset restore -exist'])
      release()
      expect((await applying).changed).to.equal(true)
      expect(runner.calls.map((c) => c.input)).to.have.members([
        'add SNM-ALLOW 198.18.0.2,tcp:80,198.19.9.9\n',
        dnsTargetEdit('198.19.1.11:53', '198.19.1.12:53'),
      ])
    })

    it('go one after the other when a set is created, which a new rule may reference', async () => {
      const desired = await changedMapping()
      desired.sets.push({name: 'SNM-EG-0badcafe', type: 'hash:ip', options: 'family inet', entries: []})
      const {runner, started, release} = heldSets()
      const applying = applyIptables(runner, desired, {assumeActual: await capturedState()})
      await settle()
      expect(started).to.deep.equal(['ipset restore -exist'])
      release()
      await applying
      expect(started).to.deep.equal(['ipset restore -exist', 'iptables-restore --noflush --wait'])
    })

    it('when the sets fail while the rules committed at once, put the rules back first, then the sets', async () => {
      let restored = false
      const {runner, release} = heldSets(
        (call) => {
          if (call.command === 'iptables-restore') restored = true
          return call.command === 'ipset' && call.input!.startsWith('add ') ? new CommandError('ipset', ['restore', '-exist'], 1, 'ipset v7.17: Error in line 1: Hash is full') : {}
        },
        // Once iptables-restore ran, the kernel holds the new DNAT target.
        () => (restored ? IPTABLES_SAVE.replace('198.19.1.11:53', '198.19.1.12:53') : IPTABLES_SAVE),
      )
      const applying = applyIptables(runner, await changedMapping(), {assumeActual: await capturedState()}).catch((e: unknown) => e)
      await settle()
      release()
      const error = (await applying) as ApplyError
      expect(error).to.be.instanceOf(ApplyError)
      expect(error.step).to.equal('ipset prepare')
      expect(error.message).to.include('Hash is full').and.not.include('also failed')
      expect(commandLines(runner.calls)).to.deep.equal([
        'iptables-restore --noflush --wait',
        'ipset restore -exist',
        'iptables-save',
        'iptables-restore --noflush --wait',
        'ipset restore -exist',
      ])
      expect(runner.calls[3]!.input).to.equal(dnsTargetEdit('198.19.1.12:53', '198.19.1.11:53'))
      expect(runner.calls[4]!.input).to.equal('del SNM-ALLOW 198.18.0.2,tcp:80,198.19.9.9\n')
    })
  })

  it('wraps a failed read as an ApplyError of the read step', async () => {
    const runner = new RecordingRunner((call) => (call.command === 'ipset' ? new CommandError('ipset', ['save'], 1, 'Kernel error') : {stdout: '[]'}))
    const error = (await applyIptables(runner, await capturedState()).catch((e: unknown) => e)) as ApplyError
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.message).to.equal('read: reading kernel state: ipset save failed')
    expect(writesOf(runner)).to.deep.equal([])
  })
})

describe('payload failure context', () => {
  const cases: [string, number | undefined][] = [
    ['iptables-restore v1.8.9 (nf_tables): unknown option\nError occurred at line: 7\n', 7],
    ['iptables-restore: line 12 failed\n', 12],
    ['iptables-restore v1.8.9 (nf_tables): \nline 9: CHAIN_DEL failed (Device or resource busy): chain SNM-A-03160ee0\n', 9],
    ['ipset v7.17: Error in line 3: Syntax error\n', 3],
    ['Error: inet prefix is expected.\nCommand failed -:2\n', 2],
    ['Killed\n', undefined],
  ]
  for (const [stderr, line] of cases) {
    it(`finds line ${line} in ${JSON.stringify(stderr.split('\n')[0])}`, () => expect(failedLine(stderr)).to.equal(line))
  }

  it('blames the first line using a missing chain or set when iptables-nft blames COMMIT', () => {
    const payload = '*nat\n:SNM-A - [0:0]\n-A SNM-A -j SNM-B\n-A SNM-A -m set --match-set SNM-S src -j SNM-B\nCOMMIT\n'
    expect(culpritLine(payload, 5, "Chain 'SNM-B' does not exist")).to.equal(3)
    expect(culpritLine(payload, 5, "Set SNM-S doesn't exist.")).to.equal(4)
    expect(culpritLine(payload, 5, 'Resource busy')).to.equal(5)
    expect(culpritLine(payload, 3, "Chain 'SNM-B' does not exist")).to.equal(3)
  })

  it('shows three lines before the failing one and one after, marking it', () => {
    const payload = 'a\nb\nc\nd\ne\nf\n'
    expect(payloadContext(payload, 5)).to.equal('     2: b\n     3: c\n     4: d\n>    5: e\n     6: f')
    expect(payloadContext(payload, 1)).to.equal('>    1: a\n     2: b')
  })
})

describe('flushIptables', () => {
  it('lists everything smartnat owns in a dry run and writes nothing', async () => {
    const runner = fakeKernel()
    const report = await flushIptables(runner, {dryRun: true})
    expect(writesOf(runner)).to.deep.equal([])
    expect(report).to.deep.equal({
      dryRun: true,
      changed: true,
      removed: {
        jumps: [
          'mangle: -A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING',
          'nat: -A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING',
          'nat: -A POSTROUTING -m comment --comment smartnat -j SNM-POSTROUTING',
          'filter: -A INPUT -m comment --comment smartnat -j SNM-INPUT',
          'filter: -A FORWARD -m comment --comment smartnat -j SNM-FORWARD',
        ],
        chains: [
          'mangle: SNM-PREROUTING',
          'nat: SNM-A-1a2b3c4d',
          'nat: SNM-POSTROUTING',
          'nat: SNM-PREROUTING',
          'filter: SNM-FORWARD',
          'filter: SNM-INPUT',
        ],
        sets: ['SNM-ALLOW', 'SNM-ENDPOINTS'],
        ipRules: ['priority 7001 fwmark 0x100000/0xff00000 table 7001'],
        routes: ['198.18.0.0/24 dev ext0 scope link src 198.18.0.2 table 7001', 'default via 198.18.0.1 dev ext0 table 7001'],
      },
    })
  })

  it('removes jumps, chains, then sets, then ip rules and routes, naming only owned objects', async () => {
    const runner = fakeKernel()
    await flushIptables(runner, {dryRun: false})
    const writes = writesOf(runner)
    expect(commandLines(writes)).to.deep.equal(['iptables-restore --noflush --wait', 'ipset restore -exist', 'ip -batch -'])
    const restore = writes[0]!.input!
    expect(restore).to.not.match(/FOREIGN|MASQUERADE$|blocklist/m)
    expect(restore.split('\n').filter((l) => l.startsWith('-X '))).to.have.length(6)
    expect(restore.split('\n').filter((l) => l.startsWith('-D '))).to.have.length(5)
    expect(writes[1]!.input).to.equal('destroy SNM-ALLOW\ndestroy SNM-ENDPOINTS\n')
    expect(writes[2]!.input).to.equal(
      'rule del priority 7001 fwmark 0x100000/0xff00000 table 7001\nroute del 198.18.0.0/24 table 7001\nroute del default table 7001\n',
    )
  })
})
