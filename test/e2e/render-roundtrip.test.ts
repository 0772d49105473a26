/**
 * Loads rendered payloads into a fresh network namespace and reads them back with iptables-save,
 * ipset save and `ip -j`: every rendered line must come back byte for byte, which is what lets
 * desired and actual state compare as strings. For each backend, packets traced through the state
 * read back must fare as through the rendered one, which is what `explain` relies on.
 */
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {renderIptables, renderRestoreScripts} from '../../src/lib/backend/iptables/render.js'
import type {TracePacket} from '../../src/lib/backend/trace-packet.js'
import type {IptablesState} from '../../src/lib/backend/iptables/types.js'
import {createBackend} from '../../src/lib/backend/registry.js'
import {ExecRunner} from '../../src/lib/host/runner.js'
import {BACKENDS, requireBackend} from '../support/backends.js'
import {requireNeeds} from '../support/requirements.js'
import {directModel} from '../unit/iptables-direct-fixture.js'
import {cidr, sampleModel} from '../unit/nat-model-fixture.js'

const NETNS = `snm-render-${process.pid}`
const TOOLS = ['ip', 'iptables-save', 'iptables-restore', 'ipset']

/** `create NAME TYPE OPTIONS` lines of `ipset save`, without what the kernel picks itself. */
function savedCreateLines(save: string): string[] {
  return save
    .split('\n')
    .filter((line) => line.startsWith('create '))
    .map((line) => line.replace(/ bucketsize \d+/, '').replace(/ initval 0x[0-9a-f]+/, '').replace(/ hashsize \d+/, ''))
}

function savedEntries(save: string, set: string): string[] {
  const prefix = `add ${set} `
  return save
    .split('\n')
    .filter((line) => line.startsWith(prefix))
    .map((line) => line.slice(prefix.length))
    .sort()
}

describe('rendered state round-trips through the kernel (root, network namespace)', function () {
  this.timeout(30_000)
  const ns = new ExecRunner({timeoutSeconds: 10, netns: NETNS})

  before(function () {
    requireNeeds(this, 'the render round-trip test', {root: true, tools: TOOLS})
    const added = spawnSync('ip', ['netns', 'add', NETNS], {encoding: 'utf8'})
    if (added.status !== 0) throw new Error(`ip netns add ${NETNS}: ${added.stderr}`)
  })

  after(() => {
    spawnSync('ip', ['netns', 'del', NETNS])
  })

  async function load(state: IptablesState): Promise<void> {
    const scripts = renderRestoreScripts(state)
    await ns.run('ipset', ['restore', '-exist'], {input: scripts.ipset})
    await ns.run('iptables-restore', ['--noflush'], {input: scripts.iptables})
  }

  it('keeps ipsets per network namespace on this kernel', async () => {
    const probe = `SNM-PROBE-${process.pid}`
    await ns.run('ipset', ['create', probe, 'hash:ip'])
    const root = spawnSync('ipset', ['list', '-n'], {encoding: 'utf8'})
    const leaked = root.stdout.split('\n').includes(probe)
    if (leaked) spawnSync('ipset', ['destroy', probe])
    else await ns.run('ipset', ['destroy', probe])
    expect(leaked, 'ipsets are NOT per network namespace here: sets made in a test namespace show in the root namespace').to.equal(false)
  })

  it('prints every rendered rule and jump exactly as rendered', async () => {
    const state = renderIptables(sampleModel())
    await load(state)
    for (const table of ['mangle', 'nat', 'filter'] as const) {
      const saved = (await ns.run('iptables-save', ['-t', table])).stdout.split('\n')
      const {chains, jumps} = state.tables[table]
      for (const chain of chains) expect(saved, `${table} chain ${chain.name}`).to.include(`:${chain.name} - [0:0]`)
      const rendered = [...jumps, ...chains.flatMap((c) => c.rules)]
      expect(rendered.filter((line) => !saved.includes(line)), `${table} rules not printed as rendered`).to.deep.equal([])
      const owned = saved.filter((line) => line.startsWith('-A ') && line.includes('SNM-'))
      expect(owned.length, `${table} rule count`).to.equal(rendered.length)
    }
  })

  it('prints every rendered set and entry exactly as rendered', async () => {
    const state = renderIptables(sampleModel())
    await load(state)
    const save = (await ns.run('ipset', ['save'])).stdout
    const comparable = (options: string) => options.replace(/ hashsize \d+/, '')
    expect(savedCreateLines(save).sort()).to.deep.equal(state.sets.map((s) => `create ${s.name} ${s.type} ${comparable(s.options)}`).sort())
    for (const set of state.sets) expect(savedEntries(save, set.name), set.name).to.deep.equal(set.entries)
  })

  it('replaces the contents of live sets when loaded again', async () => {
    const model = sampleModel()
    model.mappings[2]!.allowedSources = [cidr('198.18.8.0/22'), cidr('203.0.113.7')]
    const state = renderIptables(model)
    await load(state)
    const save = (await ns.run('ipset', ['save'])).stdout
    const allow = state.sets.find((s) => s.name === 'SNM-ALLOW')!
    expect(allow.entries).to.include('198.18.1.10,tcp:80,203.0.113.7')
    expect(savedEntries(save, 'SNM-ALLOW')).to.deep.equal(allow.entries)
    expect(save).to.not.match(/^create \S+-T /m)
  })

  it('describes ip rules and routes in the form `ip -j` reports them', async () => {
    const state = renderIptables(sampleModel())
    for (const [iface, address] of [['eth1', '198.18.0.10/24'], ['eth2', '198.18.1.10/24'], ['eth2', '198.18.3.5/25']] as const) {
      await ns.run('ip', ['link', 'add', iface, 'type', 'veth', 'peer', 'name', `${iface}p`], {okExitCodes: [2]})
      await ns.run('ip', ['link', 'set', iface, 'up'])
      await ns.run('ip', ['address', 'add', address, 'dev', iface])
    }
    for (const rule of state.ipRules) {
      await ns.run('ip', ['rule', 'add', 'priority', String(rule.priority), 'fwmark', rule.fwmark, 'table', String(rule.table)])
    }
    for (const route of state.routes) {
      const extra = route.via ? ['via', route.via] : ['scope', route.scope!, 'src', route.src!]
      await ns.run('ip', ['route', 'add', route.dst, 'dev', route.dev, ...extra, 'table', String(route.table)])
    }
    const rules = JSON.parse((await ns.run('ip', ['-j', 'rule'])).stdout) as Record<string, unknown>[]
    expect(rules.filter((r) => typeof r.fwmark === 'string').map((r) => ({priority: r.priority, fwmark: `${r.fwmark}/${r.fwmask}`, table: Number(r.table)}))).to.deep.equal(
      state.ipRules,
    )
    for (const table of [...new Set(state.routes.map((r) => r.table))]) {
      const shown = JSON.parse((await ns.run('ip', ['-j', 'route', 'show', 'table', String(table)])).stdout) as Record<string, unknown>[]
      const read = shown
        .map((r) => ({
          table,
          dst: r.dst,
          dev: r.dev,
          ...(r.gateway ? {via: r.gateway} : {}),
          ...(r.prefsrc ? {src: r.prefsrc} : {}),
          ...(r.scope ? {scope: r.scope} : {}),
        }))
        .sort((a, b) => (String(a.dst) < String(b.dst) ? -1 : 1))
      expect(read, `table ${table}`).to.deep.equal(state.routes.filter((r) => r.table === table))
    }
  })

  it('prints mode direct as rendered: group chains with recent and statistic matches before their DNAT, REJECT, the unserved set', async () => {
    const state = renderIptables(directModel())
    await load(state)
    for (const table of ['nat', 'filter'] as const) {
      const saved = (await ns.run('iptables-save', ['-t', table])).stdout.split('\n')
      const rendered = state.tables[table].chains.flatMap((c) => c.rules)
      expect(rendered.filter((line) => !saved.includes(line)), `${table} rules not printed as rendered`).to.deep.equal([])
    }
    const save = (await ns.run('ipset', ['save'])).stdout
    expect(savedEntries(save, 'SNM-UNSERVED')).to.deep.equal(state.sets.find((s) => s.name === 'SNM-UNSERVED')!.entries)
  })
})

for (const backend of BACKENDS) describe(`packets traced through the state read back fare as through the rendered state (root, network namespace, ${backend.name})`, function () {
  this.timeout(30_000)
  const netns = `snm-trace-${backend.name}-${process.pid}`
  const ns = new ExecRunner({timeoutSeconds: 10, netns})
  const subject = createBackend(backend.name, ns)

  before(async function () {
    requireNeeds(this, 'the trace round-trip test', {root: true, tools: TOOLS})
    requireBackend(this, backend)
    const added = spawnSync('ip', ['netns', 'add', netns], {encoding: 'utf8'})
    if (added.status !== 0) throw new Error(`ip netns add ${netns}: ${added.stderr}`)
    // The reply tables' routes name these interfaces and their subnets.
    for (const [iface, addresses] of [['eth1', ['198.18.0.10/24']], ['eth2', ['198.18.1.10/24', '198.18.3.5/25']], ['eth3', ['198.18.2.10/24']]] as const) {
      await ns.run('ip', ['link', 'add', iface, 'type', 'veth', 'peer', 'name', `${iface}p`])
      await ns.run('ip', ['link', 'set', iface, 'up'])
      for (const address of addresses) await ns.run('ip', ['address', 'add', address, 'dev', iface])
    }
  })

  after(() => {
    spawnSync('ip', ['netns', 'del', netns])
  })

  it('forward, drop, unmatched and egress alike', async () => {
    const desired = subject.render(sampleModel())
    await subject.apply(desired)
    const actual = await subject.read()
    const flows: TracePacket[] = [
      {src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1'},
      {src: '198.18.5.5', dst: '198.18.0.10', protocol: 'udp', port: 53, inInterface: 'eth1'},
      {src: '198.18.5.6', dst: '198.18.0.10', protocol: 'udp', port: 53, inInterface: 'eth1'},
      {src: '198.18.7.1', dst: '198.18.1.10', protocol: 'tcp', port: 80, inInterface: 'eth2'},
      {src: '203.0.113.5', dst: '198.18.9.9', protocol: 'tcp', port: 80, inInterface: 'eth1'},
      {src: '10.244.1.5', dst: '203.0.113.80', protocol: 'tcp', port: 443, outInterface: 'eth2'},
    ]
    const verdicts = flows.map((flow) => {
      const want = subject.inspect.trace(desired, flow)
      expect(subject.inspect.trace(actual, flow), JSON.stringify(flow)).to.deep.equal(want)
      return want.verdict
    })
    expect(verdicts).to.deep.equal(['dnat', 'dnat', 'drop', 'dnat', 'not-ours', 'snat'])
  })
})
