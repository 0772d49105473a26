/**
 * The iptables backend against the real kernel, inside a throwaway network namespace next to a
 * foreign ruleset: apply, read back, write nothing when converged, repair drift, keep the old rules
 * when an apply fails, and flush exactly what smartnat owns.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {expect} from 'chai'
import {ExecRunner} from '../../src/lib/host/runner.js'
import {applyIptables} from '../../src/lib/backend/iptables/apply.js'
import {diffIptablesState, isEmptyChanges} from '../../src/lib/backend/iptables/diff.js'
import {flushIptables} from '../../src/lib/backend/iptables/flush.js'
import {READ_COMMANDS, readIptablesState} from '../../src/lib/backend/iptables/read.js'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import type {IptablesState} from '../../src/lib/backend/iptables/types.js'
import {ApplyError} from '../../src/lib/backend/result.js'
import {CommandLogRunner} from '../support/e2e.js'
import {requireNeeds} from '../support/requirements.js'
import {iptablesBackend} from '../../src/lib/backend/iptables/backend.js'
import {UNSERVED_SET, affinityListName, groupChainName} from '../../src/lib/backend/iptables/names.js'
import {tracePacket} from '../../src/lib/backend/iptables/trace.js'
import type {TracePacket} from '../../src/lib/backend/trace-packet.js'
import type {NatModel} from '../../src/lib/plan/model.js'
import {directMapping, group} from '../unit/iptables-direct-fixture.js'
import {ip, kernelTestModel} from '../unit/nat-model-fixture.js'

const NETNS = `snm-apply-${process.pid}`
const TOOLS = ['ip', 'iptables-save', 'iptables-restore', 'ipset']

const READS = Object.values(READ_COMMANDS).map(([command, args]) => [command, ...args].join(' '))

function inNetns(...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NETNS, ...argv], {encoding: 'utf8', env: {...process.env, LC_ALL: 'C'}})
}

function sh(script: string): void {
  inNetns('sh', '-ec', script)
}

/** Everything a person would compare: iptables-save without timestamps and counters, sets without initval, IPv4 rules and routes (IPv6 link-local routes appear on their own time). */
function kernelDump(): string {
  const iptables = inNetns('iptables-save')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
  const ipset = inNetns('ipset', 'save').replace(/ initval 0x[0-9a-f]+/g, '')
  return [...iptables, ipset, inNetns('ip', '-4', 'rule', 'show'), inNetns('ip', '-4', 'route', 'show', 'table', 'all')].join('\n')
}

/** A ruleset that is not smartnat's: chains, rules in built-in chains, a DROP policy, a set, an ip rule and a table. */
function seedForeignRuleset(): void {
  sh(`
    ip link set lo up
    ip link add ext1 type veth peer name ext1-peer
    ip link add ext2 type veth peer name ext2-peer
    for l in ext1 ext1-peer ext2 ext2-peer; do ip link set $l up; done
    ip addr add 198.18.0.10/24 dev ext1
    ip addr add 198.18.2.10/24 dev ext2
    ipset create lab-block hash:net
    ipset add lab-block 198.18.66.0/24
    iptables -P FORWARD DROP
    iptables -N LAB-FWD
    iptables -A FORWARD -j LAB-FWD
    iptables -A LAB-FWD -s 198.18.9.0/24 -m comment --comment "lab \\"office\\" net" -j ACCEPT
    iptables -A INPUT -m set --match-set lab-block src -j DROP
    iptables -t nat -A PREROUTING -d 198.18.0.99/32 -p tcp --dport 22 -j DNAT --to-destination 198.18.0.98:22
    iptables -t nat -A POSTROUTING -s 198.18.9.0/24 -o ext1 -j MASQUERADE
    iptables -t mangle -N LAB-MARK
    iptables -t mangle -A PREROUTING -j LAB-MARK
    iptables -t mangle -A LAB-MARK -s 198.18.9.0/24 -j MARK --set-mark 0x7
    ip rule add priority 500 from 198.18.9.0/24 table 100
    ip route add default via 198.18.0.1 dev ext1 table 100
  `)
}

function expectConverged(actual: IptablesState, desired: IptablesState): void {
  const changes = diffIptablesState(desired, actual)
  expect(isEmptyChanges(changes), JSON.stringify(changes, null, 1)).to.equal(true)
}

describe('iptables backend in a network namespace (root)', function () {
  this.timeout(60_000)
  const runner = new ExecRunner({timeoutSeconds: 20, netns: NETNS})
  let foreignOnly = ''
  let desired: IptablesState

  before(function () {
    requireNeeds(this, 'the iptables apply test', {root: true, tools: TOOLS})
    execFileSync('ip', ['netns', 'add', NETNS])
    seedForeignRuleset()
    foreignOnly = kernelDump()
    desired = renderIptables(kernelTestModel())
  })

  after(() => {
    spawnSync('ip', ['netns', 'del', NETNS])
  })

  it('applies the desired state so that reading it back gives the same state', async () => {
    const result = await applyIptables(runner, desired)
    expect(result.changed).to.equal(true)
    expect(result.written.chains).to.equal(desired.tables.mangle.chains.length + desired.tables.nat.chains.length + desired.tables.filter.chains.length)
    expect(result.written.sets).to.equal(desired.sets.length)
    expect(result.written.routes).to.equal(desired.ipRules.length + desired.routes.length)
    const actual = await readIptablesState(runner)
    expectConverged(actual, desired)
    for (const table of ['mangle', 'nat', 'filter'] as const) {
      expect(actual.tables[table].jumps).to.deep.equal(desired.tables[table].jumps)
      const byName = (s: IptablesState) => Object.fromEntries(s.tables[table].chains.map((c) => [c.name, c.rules]))
      expect(byName(actual)).to.deep.equal(byName(desired))
    }
    expect(actual.sets.map((s) => [s.name, s.type, s.entries])).to.deep.equal(desired.sets.map((s) => [s.name, s.type, s.entries]))
    expect(actual.ipRules).to.deep.equal(desired.ipRules)
    expect(actual.routes).to.deep.equal(desired.routes)
  })

  it('puts its jumps first and leaves the foreign rules and the DROP policy in place', () => {
    const nat = inNetns('iptables-save', '-t', 'nat')
    expect(nat).to.match(/:PREROUTING ACCEPT \[0:0\]\n(?::.*\n)*-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING\n-A PREROUTING -d 198\.18\.0\.99/)
    const filter = inNetns('iptables-save', '-t', 'filter')
    expect(filter).to.include(':FORWARD DROP').and.include('-A LAB-FWD -s 198.18.9.0/24 -m comment --comment "lab \\"office\\" net" -j ACCEPT')
  })

  it('runs only the four reads when the kernel already matches', async () => {
    const recording = new CommandLogRunner(runner)
    const result = await applyIptables(recording, desired)
    expect(result).to.deep.equal({changed: false, written: {sets: 0, chains: 0, rules: 0, routes: 0}, changedEndpoints: []})
    expect([...recording.commands].sort()).to.deep.equal([...READS].sort())
  })

  it('repairs drift: a deleted rule, set entry, jump and route come back, and nothing else is rewritten', async () => {
    const addressChain = desired.tables.nat.chains.find((c) => c.name.startsWith('SNM-A-'))!
    sh(`
      iptables -t nat -D ${addressChain.name} 1
      ipset flush SNM-ENDPOINTS
      iptables -D INPUT -m comment --comment smartnat -j SNM-INPUT
      ip route del default table 7002
    `)
    expect(isEmptyChanges(diffIptablesState(desired, await readIptablesState(runner)))).to.equal(false)
    const result = await applyIptables(runner, desired)
    // The address chain gets its rule back alone; the jump comes back too.
    expect(result.written).to.deep.equal({sets: 1, chains: 1, rules: 2, routes: 1})
    expectConverged(await readIptablesState(runner), desired)
  })

  it('edits an address chain rule by rule: ports added first, between and last, one gone, one retargeted; reading back gives the desired chain', async () => {
    const edited = kernelTestModel()
    const web = edited.mappings[0]!
    const endpoint = (protocol: 'tcp' | 'udp', port: number, targetPort: number) => ({address: ip('198.18.0.10'), protocol, port, targetIP: ip('198.19.100.10'), targetPort})
    web.endpoints = [endpoint('tcp', 22, 22), endpoint('tcp', 80, 9090), endpoint('tcp', 8080, 8080), endpoint('udp', 5000, 5000)]
    const next = renderIptables(edited)
    const recording = new CommandLogRunner(runner)
    await applyIptables(recording, next)
    const restore = recording.writes(READS).find((w) => w.line.startsWith('iptables-restore'))!.input!.split('\n')
    const name = next.tables.nat.chains.find((c) => c.rules.some((r) => r.includes('--dport 8080')))!.name
    expect(restore).to.not.include(`:${name} - [0:0]`)
    expect(restore.filter((l) => l.startsWith(`-D ${name} `))).to.have.length(2)
    expect(restore.filter((l) => l.startsWith(`-I ${name} `)).map((l) => l.split(' ')[2])).to.deep.equal(['1', '2', '3', '4'])
    const actual = await readIptablesState(runner)
    expectConverged(actual, next)
    const rulesOf = (state: IptablesState) => state.tables.nat.chains.find((c) => c.name === name)!.rules
    expect(rulesOf(actual)).to.deep.equal(rulesOf(next))

    await applyIptables(runner, desired)
    expect(rulesOf(await readIptablesState(runner))).to.deep.equal(rulesOf(desired))
  })

  it('keeps the old rules and set contents when iptables-restore rejects a line, and names that line', async () => {
    const before = kernelDump()
    const broken = structuredClone(desired)
    broken.sets.find((s) => s.name === 'SNM-ENDPOINTS')!.entries = ['198.18.0.10,tcp:81']
    broken.tables.filter.chains.find((c) => c.name === 'SNM-INPUT')!.rules.push('-A SNM-INPUT -p tcp -m tcp --dport 99999 -j DROP')
    const error = await applyIptables(runner, broken).then(
      () => expect.fail('apply of a broken rule succeeded'),
      (e: unknown) => e,
    )
    expect(error).to.be.instanceOf(ApplyError)
    expect((error as ApplyError).step).to.equal('iptables-restore')
    expect((error as ApplyError).forceFull).to.equal(true)
    expect((error as ApplyError).message).to.match(/failed at payload line \d+: "-A SNM-INPUT -p tcp -m tcp --dport 99999 -j DROP"/)
    expect((error as ApplyError).message).to.include("invalid port/service `99999' specified")
    expect(kernelDump()).to.equal(before)
  })

  it('blames the rule using a missing chain although iptables-nft reports the COMMIT line', async () => {
    const before = kernelDump()
    const broken = structuredClone(desired)
    broken.tables.nat.chains.find((c) => c.name === 'SNM-PREROUTING')!.rules.push('-A SNM-PREROUTING -d 198.18.0.77/32 -j SNM-A-missing')
    const error = (await applyIptables(runner, broken).catch((e: unknown) => e)) as ApplyError
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.message).to.match(/payload line \d+( \(reported as line \d+\))?: "-A SNM-PREROUTING -d 198\.18\.0\.77\/32 -j SNM-A-missing"/)
    expect(kernelDump()).to.equal(before)
  })

  it('removes what is no longer desired: a Mapping, its chain and set entries, an interface and its table', async () => {
    const smaller = kernelTestModel()
    smaller.mappings = smaller.mappings.filter((m) => m.name === 'web')
    smaller.egress = []
    smaller.interfaces = smaller.interfaces.filter((i) => i.name === 'ext1')
    const next = renderIptables(smaller)
    const result = await applyIptables(runner, next)
    expect(result.changed).to.equal(true)
    expect(result.changedEndpoints).to.deep.equal([{address: '198.18.2.10', protocol: 'tcp', port: 443, oldTarget: '198.19.100.20:8443'}])
    const actual = await readIptablesState(runner)
    expectConverged(actual, next)
    expect(actual.sets.map((s) => s.name)).to.not.include(desired.sets.find((s) => s.name.startsWith('SNM-EG-'))!.name)
    expect(actual.routes.every((r) => r.table === 7001)).to.equal(true)
  })

  it('flush removes everything smartnat owns and leaves the foreign ruleset byte for byte', async () => {
    const dry = await flushIptables(runner, {dryRun: true})
    expect(dry.changed).to.equal(true)
    expect(dry.removed.chains).to.include('nat: SNM-PREROUTING')
    expect(kernelDump()).to.not.equal(foreignOnly)
    const report = await flushIptables(runner, {dryRun: false})
    expect(report.removed).to.deep.equal(dry.removed)
    expect(kernelDump()).to.equal(foreignOnly)
  })

  it('a second flush finds nothing and only reads', async () => {
    const recording = new CommandLogRunner(runner)
    const report = await flushIptables(recording, {dryRun: false})
    expect(report.changed).to.equal(false)
    expect([...recording.commands].sort()).to.deep.equal([...READS].sort())
  })
})

describe('iptables backend, mode direct, in a network namespace (root)', function () {
  this.timeout(60_000)
  const netns = `snm-direct-${process.pid}`
  const runner = new ExecRunner({timeoutSeconds: 20, netns})
  const inDirectNetns = (...argv: string[]) => execFileSync('ip', ['netns', 'exec', netns, ...argv], {encoding: 'utf8'})
  const STICKY = 'default/sticky tcp/443'
  const CART = 'shop/cart tcp/80'
  const member = (address: string, port: number) => ({ip: ip(address), port})

  /** The kernel test model plus groups: one of three pods, one with affinity, one of one pod (udp), one empty. */
  function directKernelModel(cart = ['198.19.200.11:8080', '198.19.200.12:8080', '198.19.200.13:8080'], sticky = ['198.19.200.21:8443', '198.19.200.22:8443']): NatModel {
    const model = kernelTestModel()
    model.mappings.push(
      directMapping('default/empty', [['198.18.0.10', 'ext1']], ['198.18.7.0/24'], [['198.18.0.10 tcp/9090', group('default/empty tcp/9090', [])]]),
      directMapping('default/sticky', [['198.18.2.10', 'ext2']], ['198.18.7.0/24'], [['198.18.2.10 tcp/8443', group(STICKY, sticky, 10800)]]),
      directMapping('shop/cart', [['198.18.0.10', 'ext1']], ['0.0.0.0/0'], [
        ['198.18.0.10 tcp/8080', group(CART, cart)],
        ['198.18.0.10 udp/9000', group('shop/cart udp/9000', ['198.19.200.14:9000'])],
      ]),
    )
    model.mappings.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
    return model
  }

  before(function () {
    requireNeeds(this, 'the iptables mode direct apply test', {root: true, tools: TOOLS})
    execFileSync('ip', ['netns', 'add', netns])
    execFileSync('ip', ['netns', 'exec', netns, 'sh', '-ec', `
      ip link add ext1 type veth peer name ext1-peer
      ip link add ext2 type veth peer name ext2-peer
      for l in lo ext1 ext1-peer ext2 ext2-peer; do ip link set $l up; done
      ip addr add 198.18.0.10/24 dev ext1
      ip addr add 198.18.2.10/24 dev ext2
    `])
  })

  after(() => {
    spawnSync('ip', ['netns', 'del', netns])
  })

  it('applies groups with and without affinity and an empty one; reading back gives the same state', async () => {
    const desired = renderIptables(directKernelModel())
    await applyIptables(runner, desired)
    const actual = await readIptablesState(runner)
    expectConverged(actual, desired)
    for (const table of ['nat', 'filter'] as const) {
      const byName = (s: IptablesState) => Object.fromEntries(s.tables[table].chains.map((c) => [c.name, c.rules]))
      expect(byName(actual), table).to.deep.equal(byName(desired))
    }
    expect(actual.sets.find((s) => s.name === UNSERVED_SET)!.entries).to.deep.equal(['198.18.0.10,tcp:9090'])
    expect(iptablesBackend(runner).inspect.inSync(desired, actual)).to.equal(true)
  })

  it('traces packets through the state read back as through the rendered one', async () => {
    const desired = renderIptables(directKernelModel())
    const actual = await readIptablesState(runner)
    const flows: TracePacket[] = [
      {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 8080, inInterface: 'ext1'},
      {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'udp', port: 9000, inInterface: 'ext1'},
      {src: '198.18.7.9', dst: '198.18.2.10', protocol: 'tcp', port: 8443, inInterface: 'ext2'},
      {src: '198.18.7.9', dst: '198.18.0.10', protocol: 'tcp', port: 9090, inInterface: 'ext1'},
      {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 9090, inInterface: 'ext1'},
    ]
    const verdicts = flows.map((flow) => {
      const want = tracePacket(desired, flow)
      expect(tracePacket(actual, flow), JSON.stringify(flow)).to.deep.equal(want)
      return want.verdict
    })
    expect(verdicts).to.deep.equal(['group', 'group', 'group', 'reject', 'drop'])
  })

  it('a change of one group writes only its chain, and keeps the affinity lists of the members that stay', async () => {
    const [kept, leaving] = [member('198.19.200.21', 8443), member('198.19.200.22', 8443)]
    const keptList = `/proc/net/xt_recent/${affinityListName(STICKY, kept)}`
    const leavingList = `/proc/net/xt_recent/${affinityListName(STICKY, leaving)}`
    // A client the kernel remembers for the member that stays.
    execFileSync('ip', ['netns', 'exec', netns, 'sh', '-ec', `echo +198.18.7.9 > ${keptList}`])
    expect(inDirectNetns('cat', keptList)).to.include('src=198.18.7.9')

    const desired = renderIptables(directKernelModel(undefined, ['198.19.200.21:8443', '198.19.200.23:8443']))
    const recording = new CommandLogRunner(runner)
    const result = await applyIptables(recording, desired)
    const restore = recording.writes(READS).filter((c) => c.line.startsWith('iptables-restore'))
    expect(restore).to.have.length(1)
    const declared = restore[0]!.input!.split('\n').filter((l) => l.startsWith(':')).map((l) => l.split(' ')[0]!.slice(1))
    expect(declared).to.deep.equal([groupChainName(STICKY)])
    expect(result.written).to.deep.equal({sets: 0, chains: 1, rules: 4, routes: 0})
    expectConverged(await readIptablesState(runner), desired)

    expect(inDirectNetns('cat', keptList)).to.include('src=198.18.7.9')
    expect(spawnSync('ip', ['netns', 'exec', netns, 'cat', leavingList]).status, 'the list of the member that left is gone').to.not.equal(0)
  })

  it('a group that empties moves its endpoint to the unserved set in place; flush removes every group chain and set', async () => {
    const desired = renderIptables(directKernelModel([], ['198.19.200.21:8443', '198.19.200.23:8443']))
    const recording = new CommandLogRunner(runner)
    const result = await applyIptables(recording, desired)
    const ipset = recording.writes(READS).filter((c) => c.line.startsWith('ipset'))
    expect(ipset.map((c) => c.input)).to.deep.equal(['add SNM-UNSERVED 198.18.0.10,tcp:8080\n'])
    // The group chain, emptied; one set updated.
    expect(result.written).to.deep.equal({sets: 1, chains: 1, rules: 0, routes: 0})
    const actual = await readIptablesState(runner)
    expectConverged(actual, desired)
    expect(actual.sets.find((s) => s.name === UNSERVED_SET)!.entries).to.deep.equal(['198.18.0.10,tcp:8080', '198.18.0.10,tcp:9090'])

    await flushIptables(runner, {dryRun: false})
    const save = inDirectNetns('iptables-save')
    expect(save).to.not.include('SNM-')
    expect(inDirectNetns('ipset', 'list', '-n')).to.not.include('SNM-')
  })
})
