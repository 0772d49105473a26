/**
 * The nftables backend against the real kernel, inside a throwaway network namespace next to a
 * foreign nft table and iptables rules: apply, read back, write nothing when converged, change
 * elements alone, keep the old table when an apply fails, and flush exactly what smartnat owns.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {expect} from 'chai'
import {ExecRunner} from '../../src/lib/host/runner.js'
import {ApplyError} from '../../src/lib/backend/result.js'
import {applyNftables} from '../../src/lib/backend/nftables/apply.js'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {diffNftState, isEmptyChanges} from '../../src/lib/backend/nftables/diff.js'
import {readNftState} from '../../src/lib/backend/nftables/read.js'
import {NftSession, PROBE} from '../../src/lib/backend/nftables/session.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {printElement, renderNftScript} from '../../src/lib/backend/nftables/syntax.js'
import type {NftState} from '../../src/lib/backend/nftables/types.js'
import {CommandLogRunner} from '../support/e2e.js'
import {requireNeeds} from '../support/requirements.js'
import {cidr, ip, kernelTestModel} from '../unit/nat-model-fixture.js'

const NETNS = `snm-nft-${process.pid}`
const TOOLS = ['ip', 'nft', 'iptables', 'iptables-save']
const READS = ['nft -j list table ip smartnat', 'ip -4 -j rule show', 'ip -4 -j route show table all']

function inNetns(...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', NETNS, ...argv], {encoding: 'utf8', env: {...process.env, LC_ALL: 'C'}})
}

/** What is not smartnat's: the foreign nft table, iptables-save without counters, and the ip rules outside smartnat's range. */
function foreignDump(): string {
  const iptables = inNetns('iptables-save')
    .split('\n')
    .filter((l) => !l.startsWith('#'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''))
  const rules = inNetns('ip', '-4', 'rule', 'show').split('\n').filter((l) => !/^70\d\d:/.test(l))
  const tables = inNetns('nft', 'list', 'tables')
  return [inNetns('nft', 'list', 'table', 'inet', 'lab'), ...iptables, ...rules, tables.replace('table ip smartnat\n', '')].join('\n')
}

/** Handles of the table and its chains and sets: they change only when the table is re-created. */
function handles(): string {
  const items = (JSON.parse(inNetns('nft', '-j', 'list', 'table', 'ip', 'smartnat')) as {nftables: Record<string, {name?: string; handle?: number}>[]}).nftables
  return items
    .flatMap((item) => Object.entries(item))
    .filter(([kind]) => ['table', 'chain', 'set', 'map'].includes(kind))
    .map(([kind, body]) => `${kind} ${body.name} ${body.handle}`)
    .join('\n')
}

function seedForeignRuleset(): void {
  inNetns(
    'sh',
    '-ec',
    `
    ip link set lo up
    ip link add ext1 type veth peer name ext1-peer
    ip link add ext2 type veth peer name ext2-peer
    for l in ext1 ext1-peer ext2 ext2-peer; do ip link set $l up; done
    ip addr add 198.18.0.10/24 dev ext1
    ip addr add 198.18.2.10/24 dev ext2
    nft add table inet lab
    nft add set inet lab blocked '{ type ipv4_addr; flags interval; elements = { 198.18.66.0/24 } }'
    nft add chain inet lab input '{ type filter hook input priority 0; policy accept; }'
    nft add rule inet lab input ip saddr @blocked counter drop
    iptables -P FORWARD DROP
    iptables -N LAB-FWD
    iptables -A FORWARD -j LAB-FWD
    iptables -A LAB-FWD -s 198.18.9.0/24 -m comment --comment "lab office" -j ACCEPT
    iptables -t nat -A PREROUTING -d 198.18.0.99/32 -p tcp --dport 22 -j DNAT --to-destination 198.18.0.98:22
    ip rule add priority 500 from 198.18.9.0/24 table 100
    ip route add default via 198.18.0.1 dev ext1 table 100
  `,
  )
}

function expectConverged(actual: NftState, desired: NftState): void {
  const changes = diffNftState(desired, actual)
  expect(isEmptyChanges(changes), JSON.stringify(changes, null, 1)).to.equal(true)
}

describe('nftables backend in a network namespace (root)', function () {
  this.timeout(60_000)
  const runner = new ExecRunner({timeoutSeconds: 20, netns: NETNS})
  let foreign = ''
  let desired: NftState

  before(function () {
    requireNeeds(this, 'the nftables apply test', {root: true, tools: TOOLS})
    execFileSync('ip', ['netns', 'add', NETNS])
    seedForeignRuleset()
    foreign = foreignDump()
    desired = renderNftables(kernelTestModel())
  })

  after(() => {
    spawnSync('ip', ['netns', 'del', NETNS])
  })

  it('applies from nothing and reads back exactly what it rendered', async () => {
    const result = await applyNftables(runner, desired)
    expect(result.changed).to.equal(true)
    const actual = await readNftState(runner)
    expect(actual).to.deep.equal(desired)
    expectConverged(actual, desired)
    expect(foreignDump()).to.equal(foreign)
  })

  it('reads and writes nothing on a second apply', async () => {
    const recording = new CommandLogRunner(runner)
    const result = await nftablesBackend(recording).apply(desired)
    expect(result).to.deep.equal({changed: false, written: {sets: 0, chains: 0, rules: 0, routes: 0}, changedEndpoints: []})
    expect(recording.writes(READS)).to.deep.equal([])
  })

  it('changes a DNAT target and adds a Mapping through elements alone, keeping the table', async () => {
    const before = handles()
    const next = kernelTestModel()
    next.mappings[0]!.endpoints[0]!.targetPort = 9090
    next.mappings.push({
      namespace: 'zoo',
      name: 'ssh',
      addresses: [{address: ip('198.18.0.10'), interface: 'ext1'}],
      allowedSources: [cidr('198.18.7.0/24')],
      serviceVIP: ip('198.19.100.30'),
      podIPs: [],
      endpoints: [{address: ip('198.18.0.10'), protocol: 'tcp', port: 2222, targetIP: ip('198.19.100.30'), targetPort: 22}],
    })
    desired = renderNftables(next)
    const recording = new CommandLogRunner(runner)
    const result = await applyNftables(recording, desired)
    const writes = recording.writes(READS)
    expect(writes.map((w) => w.line)).to.deep.equal(['nft -f -'])
    expect(writes[0]!.input!.split('\n').filter(Boolean).every((line) => /^(add|delete) element ip smartnat /.test(line))).to.equal(true)
    expect(result.changedEndpoints).to.deep.equal([{address: '198.18.0.10', protocol: 'tcp', port: 80, oldTarget: '198.19.100.10:8080'}])
    expect(handles()).to.equal(before)
    expect(await readNftState(runner)).to.deep.equal(desired)
  })

  it('adds the allow-list set of a new prefix length and its lookup without replacing the table, and removes them again', async () => {
    const before = handles()
    const next = kernelTestModel()
    next.mappings[0]!.endpoints[0]!.targetPort = 9090
    next.mappings.push({
      namespace: 'zoo',
      name: 'wide',
      addresses: [{address: ip('198.18.0.10'), interface: 'ext1'}],
      allowedSources: [cidr('198.18.16.0/20')],
      serviceVIP: ip('198.19.100.31'),
      podIPs: [],
      endpoints: [{address: ip('198.18.0.10'), protocol: 'tcp', port: 2323, targetIP: ip('198.19.100.31'), targetPort: 23}],
    })
    const wide = renderNftables(next)
    const recording = new CommandLogRunner(runner)
    await applyNftables(recording, wide)
    const [write, ...rest] = recording.writes(READS)
    expect(rest).to.deep.equal([])
    expect(write!.input).to.include('add set ip smartnat allowed_20').and.not.include('delete table')
    expect(await readNftState(runner)).to.deep.equal(wide)
    // The table, its chains and its other sets are the same objects: nothing was re-created.
    expect(handles().split('\n')).to.include.members(before.split('\n'))

    const back = new CommandLogRunner(runner)
    await applyNftables(back, desired)
    expect(back.writes(READS).map((w) => w.input!.split('\n').filter(Boolean).at(-1))).to.deep.equal(['delete set ip smartnat allowed_20'])
    expect(await readNftState(runner)).to.deep.equal(desired)
    expect(handles()).to.equal(before)
  })

  it('keeps the old elements when an element change fails, and says which line', async () => {
    const before = await readNftState(runner)
    const broken = structuredClone(desired)
    const endpoints = broken.table!.sets.find((s) => s.name === 'endpoints')!
    endpoints.elements.push(printElement(endpoints, {key: ['198.18.0.10', 'tcpx', '81'], value: ['198.19.100.10', '81']}))
    const error = await applyNftables(runner, broken).then(
      () => expect.fail('apply succeeded'),
      (e: unknown) => e as ApplyError,
    )
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.forceFull).to.equal(true)
    expect(error.message).to.match(/nft failed at payload line 1: "add element ip smartnat endpoints \{ 198\.18\.0\.10 \. tcpx \. 81/)
    expect(error.message).to.include('Could not resolve protocol name')
    expect(await readNftState(runner)).to.deep.equal(before)
  })

  it('changes elements through a kept nft -i, one line per transaction, and keeps the table', async () => {
    const before = handles()
    const log = new CommandLogRunner(runner)
    const session = new NftSession(log)
    try {
      for (const targetPort of [9091, 9092]) {
        const next = kernelTestModel()
        next.mappings[0]!.endpoints[0]!.targetPort = targetPort
        const wanted = renderNftables(next)
        await applyNftables(log, wanted, {}, session)
        expect(await readNftState(runner)).to.deep.equal(wanted)
        desired = wanted
      }
      const questions = log.writes(READS)
      // The probe that checks nft -i answers, then one line per change: a deletion and an add.
      expect(questions.map((q) => q.line)).to.deep.equal(['nft -i', 'nft -i', 'nft -i'])
      expect(questions[0]!.input).to.equal(`${PROBE}\n`)
      expect(questions[2]!.input).to.equal(
        'delete element ip smartnat endpoints { 198.18.0.10 . tcp . 80 }; ' +
          'add element ip smartnat endpoints { 198.18.0.10 . tcp . 80 comment "default/web tcp/80" : 198.19.100.10 . 9092 }\n' +
          `${PROBE}\n`,
      )
    } finally {
      session.close()
    }
    expect(handles()).to.equal(before)
  })

  it("reads back a daemon's sets, unchanged in the kernel, as the very sets it rendered, and a set changed there as the kernel has it", async () => {
    const daemon = nftablesBackend(runner, {rendersAgain: true})
    const model = kernelTestModel()
    const rendered = daemon.render(model)
    await daemon.apply(rendered)
    const read = await daemon.read()
    const renderedSets = new Set(rendered.table!.sets)
    const kept = (state: NftState) => state.table!.sets.filter((set) => renderedSets.has(set)).map((set) => set.name)
    const names = rendered.table!.sets.map((set) => set.name)
    expect(names).to.include.members(['endpoints', 'allowed_32'])
    expect(kept(read)).to.deep.equal(names)
    expect(read).to.deep.equal(await readNftState(runner))
    expectConverged(read, rendered)
    // Changed behind the daemon's back: that map is read as the kernel has it, and the apply puts it back.
    inNetns('nft', 'delete', 'element', 'ip', 'smartnat', 'endpoints', '{ 198.18.0.10 . tcp . 80 }')
    const drifted = await daemon.read()
    expect(kept(drifted)).to.deep.equal(names.filter((name) => name !== 'endpoints'))
    expect(drifted).to.deep.equal(await readNftState(runner))
    expect(isEmptyChanges(diffNftState(rendered, drifted))).to.equal(false)
    await daemon.apply(daemon.render(model))
    expectConverged(await readNftState(runner), rendered)
    desired = rendered
  })

  it('keeps the old elements when an element change through nft -i fails, says what nft said, and goes on', async () => {
    const log = new CommandLogRunner(runner)
    const session = new NftSession(log)
    try {
      const before = await readNftState(runner)
      const broken = structuredClone(desired)
      const endpoints = broken.table!.sets.find((s) => s.name === 'endpoints')!
      // A deletion that would succeed, with an add that cannot: neither is committed.
      endpoints.elements.shift()
      endpoints.elements.push(printElement(endpoints, {key: ['198.18.0.10', 'tcpx', '81'], value: ['198.19.100.10', '81']}))
      const error = await applyNftables(log, broken, {}, session).then(
        () => expect.fail('apply succeeded'),
        (e: unknown) => e as ApplyError,
      )
      expect(error).to.be.instanceOf(ApplyError)
      expect(error.forceFull).to.equal(true)
      expect(error.message).to.include('nft failed')
      expect(error.message).to.include('Could not resolve protocol name')
      expect(log.writes(READS).map((w) => w.line)).to.deep.equal(['nft -i', 'nft -i'])
      expect(await readNftState(runner)).to.deep.equal(before)
      const next = kernelTestModel()
      next.mappings[0]!.endpoints[0]!.targetPort = 9093
      desired = renderNftables(next)
      await applyNftables(runner, desired, {}, session)
      expect(await readNftState(runner)).to.deep.equal(desired)
    } finally {
      session.close()
    }
  })

  it('keeps the old table when a table replace fails', async () => {
    const before = handles()
    const broken = structuredClone(desired)
    // A chain added makes it a replace of the table.
    broken.table!.chains.push({name: 'extra', rules: [{matches: [{kind: 'lookup', key: ['ip saddr'], set: 'missing', negate: false}], statement: {kind: 'drop'}}]})
    const error = await applyNftables(runner, broken).then(
      () => expect.fail('apply succeeded'),
      (e: unknown) => e as ApplyError,
    )
    const line = renderNftScript(broken).split('\n').findIndex((l) => l.includes('@missing')) + 1
    expect(error.message).to.include(`nft failed at payload line ${line}: "\\t\\tip saddr @missing drop"`)
    expect(handles()).to.equal(before)
    expectConverged(await readNftState(runner), desired)
    expect(foreignDump()).to.equal(foreign)
  })

  it('repairs a chain someone edited by refilling it, and a table someone added a chain to by replacing it whole', async () => {
    inNetns('nft', 'add', 'rule', 'ip', 'smartnat', 'forward', 'counter', 'accept')
    const refill = new CommandLogRunner(runner)
    await applyNftables(refill, desired)
    expect(refill.writes(READS).map((w) => w.input!.split('\n')[0])).to.deep.equal(['flush chain ip smartnat forward'])
    expect(await readNftState(runner)).to.deep.equal(desired)

    inNetns('nft', 'add', 'chain', 'ip', 'smartnat', 'extra')
    const replace = new CommandLogRunner(runner)
    await applyNftables(replace, desired)
    expect(replace.writes(READS).map((w) => w.input!.split('\n')[1])).to.deep.equal(['delete table ip smartnat'])
    expect(await readNftState(runner)).to.deep.equal(desired)
  })

  it('flushes its table, ip rules and routes, and nothing else; a second flush finds nothing', async () => {
    const dry = await nftablesBackend(runner).flush({dryRun: true})
    expect(dry.changed).to.equal(true)
    expect(inNetns('nft', 'list', 'tables')).to.include('table ip smartnat')
    const report = await nftablesBackend(runner).flush({dryRun: false})
    expect(report.changed).to.equal(true)
    expect(report.removed.ipRules).to.deep.equal(['priority 7001 fwmark 0x100000/0xff00000 table 7001', 'priority 7002 fwmark 0x200000/0xff00000 table 7002'])
    expect(inNetns('nft', 'list', 'tables')).not.to.include('smartnat')
    expect(inNetns('ip', '-4', 'route', 'show', 'table', 'all')).not.to.match(/table 700\d/)
    expect(foreignDump()).to.equal(foreign)
    const again = await nftablesBackend(runner).flush({dryRun: false})
    expect(again.changed).to.equal(false)
  })

  it('applies an empty model: a table with empty maps and no interfaces', async () => {
    const empty = renderNftables({mappings: [], interfaces: [], egress: [], masquerade: true})
    await applyNftables(runner, empty)
    expect(await readNftState(runner)).to.deep.equal(empty)
    await nftablesBackend(runner).flush({dryRun: false})
    expect(foreignDump()).to.equal(foreign)
  })
})
