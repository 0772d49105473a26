/**
 * The nftables backend's mode direct against the real kernel, in throwaway network namespaces:
 * groups with and without affinity and an empty one apply and read back as rendered (the `targets`
 * map declared with `typeof` included); a change of one member of a group without affinity is two
 * element writes in one transaction, the table and every chain and set keeping their handles; a
 * client's place in an affinity set, put there by its own packet, survives an unrelated change; a
 * group with affinity that goes takes its chains and sets along.
 */
import {execFileSync, spawnSync} from 'node:child_process'
import {expect} from 'chai'
import {ExecRunner} from '../../src/lib/host/runner.js'
import {applyNftables} from '../../src/lib/backend/nftables/apply.js'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {diffNftState, isEmptyChanges} from '../../src/lib/backend/nftables/diff.js'
import {affinitySetName, groupChainName} from '../../src/lib/backend/nftables/names.js'
import {readNftState} from '../../src/lib/backend/nftables/read.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import type {NftState} from '../../src/lib/backend/nftables/types.js'
import type {NatModel} from '../../src/lib/plan/model.js'
import {CommandLogRunner} from '../support/e2e.js'
import {requireNeeds} from '../support/requirements.js'
import {group, kernelDirectModel} from '../unit/direct-model-fixture.js'

const NETNS = `snm-nftd-${process.pid}`
const CLIENT = `snm-nftd-c-${process.pid}`
const TOOLS = ['ip', 'nft', 'bash']
const READS = ['nft -j list table ip smartnat', 'ip -4 -j rule show', 'ip -4 -j route show table all']
const UDP53 = group('lab/direct udp/53', ['198.19.200.31:5353', '198.19.200.32:5353'], 600)

function run(netns: string, ...argv: string[]): string {
  return execFileSync('ip', ['netns', 'exec', netns, ...argv], {encoding: 'utf8', env: {...process.env, LC_ALL: 'C'}, timeout: 10_000})
}

/** `kind name handle` of the table and each chain and set: a handle changes only when its object is made anew. */
function handles(): Map<string, number> {
  const items = (JSON.parse(run(NETNS, 'nft', '-j', 'list', 'table', 'ip', 'smartnat')) as {nftables: Record<string, {name?: string; handle?: number}>[]}).nftables
  return new Map(
    items
      .flatMap((item) => Object.entries(item))
      .filter(([kind]) => ['table', 'chain', 'set', 'map'].includes(kind))
      .map(([kind, body]) => [`${kind} ${body.name}`, body.handle!]),
  )
}

/** The clients the kernel keeps in an affinity set. */
function affinityClients(set: string): string[] {
  const listed = JSON.parse(run(NETNS, 'nft', '-j', 'list', 'set', 'ip', 'smartnat', set)) as {nftables: {set?: {elem?: {elem: {val: string}}[]}}[]}
  return listed.nftables.flatMap((item) => item.set?.elem ?? []).map((e) => e.elem.val)
}

/** The model with the endpoints of group `id` led to a group of `members` instead. */
function regrouped(model: NatModel, id: string, members: string[], affinitySeconds?: number): NatModel {
  const next = structuredClone(model)
  const replacement = group(id, members, affinitySeconds)
  for (const mapping of next.mappings) {
    for (const e of mapping.endpoints) if (e.group?.id === id) e.group = replacement
    if (mapping.groups) mapping.groups = mapping.groups.map((g) => (g.id === id ? replacement : g))
  }
  return next
}

function expectConverged(actual: NftState, desired: NftState): void {
  const changes = diffNftState(desired, actual)
  expect(isEmptyChanges(changes), JSON.stringify(changes, null, 1)).to.equal(true)
}

describe('nftables backend in mode direct, in a network namespace (root)', function () {
  this.timeout(60_000)
  const runner = new ExecRunner({timeoutSeconds: 20, netns: NETNS})
  let model: NatModel
  let desired: NftState

  before(function () {
    requireNeeds(this, 'the nftables mode direct apply test', {root: true, tools: TOOLS})
    execFileSync('ip', ['netns', 'add', NETNS])
    execFileSync('ip', ['netns', 'add', CLIENT])
    run(
      NETNS,
      'sh',
      '-ec',
      `
      ip link set lo up
      ip link add ext1 type veth peer name ext1-peer netns ${CLIENT}
      ip link add ext2 type veth peer name ext2-peer
      for l in ext1 ext2 ext2-peer; do ip link set $l up; done
      ip addr add 198.18.0.10/24 dev ext1
      ip addr add 198.18.2.10/24 dev ext2
    `,
    )
    run(CLIENT, 'sh', '-ec', 'ip link set lo up; ip link set ext1-peer up; ip addr add 198.18.0.77/24 dev ext1-peer')
    model = kernelDirectModel()
    desired = renderNftables(model)
  })

  after(() => {
    spawnSync('ip', ['netns', 'del', CLIENT])
    spawnSync('ip', ['netns', 'del', NETNS])
  })

  it('applies groups with and without affinity and an empty one, and reads back exactly what it rendered', async () => {
    expect(desired.table!.chains.map((c) => c.name)).to.include('pick_3').and.not.include(groupChainName('lab/direct tcp/9000'))
    await applyNftables(runner, desired)
    const actual = await readNftState(runner)
    expect(actual).to.deep.equal(desired)
    expectConverged(actual, desired)
  })

  it('reads and writes nothing on a second apply', async () => {
    const recording = new CommandLogRunner(runner)
    const result = await nftablesBackend(recording).apply(desired)
    expect(result.changed).to.equal(false)
    expect(recording.writes(READS)).to.deep.equal([])
  })

  it('keeps the client its packet put into an affinity set out of the comparison', async () => {
    // One datagram is enough: the nat hook runs, and updates the set, before any route is looked up.
    run(CLIENT, 'bash', '-c', 'echo probe > /dev/udp/198.18.0.10/5353')
    const sets = UDP53.members.map((member) => affinitySetName(UDP53.id, member, 600))
    // The datagram may still wait for ARP when bash returns: look again, a bounded number of times.
    for (let tries = 0; tries < 50 && sets.flatMap(affinityClients).length === 0; tries++) await new Promise((resolve) => setTimeout(resolve, 100))
    expect(sets.flatMap(affinityClients)).to.deep.equal(['198.18.0.77'])
    expectConverged(await readNftState(runner), desired)
  })

  it('writes one slot of targets when one member changes, keeping the table, every chain and set, and the client in its affinity set', async () => {
    const before = handles()
    const tcp80 = 'lab/direct tcp/80'
    const next = regrouped(model, tcp80, ['198.19.200.31:8080', '198.19.200.32:8080', '198.19.200.34:8080'])
    const recording = new CommandLogRunner(runner)
    await applyNftables(recording, renderNftables(next))
    const writes = recording.writes(READS)
    expect(writes.map((w) => w.line)).to.deep.equal(['nft -f -'])
    expect(writes[0]!.input!.split('\n').filter(Boolean)).to.deep.equal([
      'delete element ip smartnat targets { 198.18.0.10 . tcp . 8080 . 2 }',
      'add element ip smartnat targets { 198.18.0.10 . tcp . 8080 . 2 comment "lab/direct tcp/8080" : 198.19.200.34 . 8080 }',
    ])
    expect(handles()).to.deep.equal(before)
    const sets = UDP53.members.map((member) => affinitySetName(UDP53.id, member, 600))
    expect(sets.flatMap(affinityClients)).to.deep.equal(['198.18.0.77'])
    model = next
    desired = renderNftables(model)
    expect(await readNftState(runner)).to.deep.equal(desired)
  })

  it('sends a group that grows to the pick chain of its size by element writes alone; one outgrowing pick_16 replaces the table', async () => {
    const tcp80 = 'lab/direct tcp/80'
    const before = handles()
    const grown = regrouped(model, tcp80, ['198.19.200.31:8080', '198.19.200.32:8080', '198.19.200.34:8080', '198.19.200.35:8080'])
    const recording = new CommandLogRunner(runner)
    await applyNftables(recording, renderNftables(grown))
    expect(recording.writes(READS)[0]!.input!.split('\n').filter(Boolean).every((line) => /^(add|delete) element /.test(line))).to.equal(true)
    expect(await readNftState(runner)).to.deep.equal(renderNftables(grown))
    expect(handles()).to.deep.equal(before)
    const large = regrouped(model, tcp80, Array.from({length: 17}, (_, i) => `198.19.200.${i + 31}:8080`))
    await applyNftables(runner, renderNftables(large))
    expect(await readNftState(runner)).to.deep.equal(renderNftables(large))
    expect([...handles().keys()].filter((name) => name.startsWith('chain pick_'))).to.have.length(32)
    await applyNftables(runner, desired)
    expect(await readNftState(runner)).to.deep.equal(desired)
  })

  it('deletes a group that goes with its member chains and affinity sets, in one transaction, keeping the table', async () => {
    const tableHandle = handles().get('table smartnat')
    const next = structuredClone(model)
    const mapping = next.mappings.find((m) => m.name === 'direct')!
    mapping.endpoints = mapping.endpoints.filter((e) => e.group?.id !== UDP53.id)
    mapping.groups = mapping.groups!.filter((g) => g.id !== UDP53.id)
    const recording = new CommandLogRunner(runner)
    await applyNftables(recording, renderNftables(next))
    const lines = recording.writes(READS)[0]!.input!.split('\n').filter(Boolean)
    expect(lines.filter((l) => l.startsWith('delete set') || l.startsWith('delete chain'))).to.have.length(2 + 3)
    expect(handles().get('table smartnat')).to.equal(tableHandle)
    model = next
    desired = renderNftables(model)
    const actual = await readNftState(runner)
    expect(actual).to.deep.equal(desired)
    expect(actual.table!.sets.filter((s) => s.name.startsWith('affinity_'))).to.deep.equal([])
  })

  it('flushes its table with every group chain and set in it', async () => {
    const report = await nftablesBackend(runner).flush({dryRun: false})
    expect(report.removed.chains.filter((c) => /: pick_/.test(c))).to.have.length(16)
    expect(run(NETNS, 'nft', 'list', 'tables')).not.to.include('smartnat')
  })
})
