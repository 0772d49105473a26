/**
 * Kernel benchmark (root): syncs synthetic Mappings into throwaway network namespaces with the
 * iptables backend and compares with the floor (the same restore payloads fed straight to
 * ipset/iptables-restore/ip) and with the original controller's one-process-per-rule way.
 *
 *   npm run bench:kernel
 */
import {spawn} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {applyIptables} from '../src/lib/backend/iptables/apply.js'
import {READ_COMMANDS} from '../src/lib/backend/iptables/read.js'
import {renderIptables} from '../src/lib/backend/iptables/render.js'
import type {IptablesState} from '../src/lib/backend/iptables/types.js'
import type {HostInfo, Snapshot} from '../src/lib/plan/model.js'
import {plan} from '../src/lib/plan/plan.js'
import {CountingRunner, addHostInterfaces, createNamespace, kernelUnavailableReason, type BenchNamespace, type CountedCall} from './netns.js'
import {applyOriginalWay} from './original.js'
import {median, printTable, printTargets, timed, type Target} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticPods, syntheticSnapshot} from './synthetic.js'

const REPEATS = 3
const ORIGINAL_COUNT = 500

const READS = new Set(Object.values(READ_COMMANDS).map(([command, args]) => [command, ...args].join(' ')))

function writesOf(calls: readonly CountedCall[]): CountedCall[] {
  return calls.filter((c) => !READS.has([c.command, ...c.args].join(' ')))
}

function desiredOf(snapshot: Snapshot, host: HostInfo): IptablesState {
  return renderIptables(plan(snapshot, host, BENCH_PLAN_OPTIONS).model)
}

/** A fresh namespace with the host's interfaces; destroyed after `body` however it ends. */
async function withHostNamespace<T>(role: string, host: HostInfo, body: (ns: BenchNamespace) => Promise<T>): Promise<T> {
  const ns = await createNamespace(role)
  try {
    await addHostInterfaces(ns, host)
    return await body(ns)
  } finally {
    await ns.destroy()
  }
}

interface FullSync {
  planRenderMs: number
  applyMs: number
  floorMs: number
}

/** One full sync into an empty namespace, then the floor: the same payloads straight into another empty one. */
async function fullSync(count: number, run: number): Promise<FullSync> {
  const {host, addresses} = syntheticHost()
  const snapshot = syntheticSnapshot(count, addresses)
  let payloads: CountedCall[] = []
  const smartnat = await withHostNamespace(`full${count}-${run}`, host, async (ns) => {
    const counting = new CountingRunner(ns.runner)
    const rendered = await timed(() => desiredOf(snapshot, host))
    const applied = await timed(() => applyIptables(counting, rendered.value))
    payloads = writesOf(counting.take())
    return {planRenderMs: rendered.ms, applyMs: applied.ms}
  })
  const floorMs = await withHostNamespace(`floor${count}-${run}`, host, async (ns) => {
    const {ms} = await timed(async () => {
      for (const call of payloads) await ns.runner.run(call.command, call.args, call.input === undefined ? {} : {input: call.input})
    })
    return ms
  })
  return {...smartnat, floorMs}
}

interface ChangeResult {
  name: string
  planRenderMs: number
  applyMs: number
  writeMs: number
  writes: string
  converged: boolean
}

function describeWrites(calls: readonly CountedCall[]): string {
  return calls.map((c) => `${c.command === 'ipset' ? 'ipset' : c.command} ${c.inputLines} lines`).join(', ')
}

/** Applies `snapshot` over what the namespace holds; checks a second apply writes nothing. */
async function change(name: string, runner: CountingRunner, snapshot: Snapshot, host: HostInfo): Promise<ChangeResult> {
  const rendered = await timed(() => desiredOf(snapshot, host))
  runner.take()
  const applied = await timed(() => applyIptables(runner, rendered.value))
  const writes = writesOf(runner.take())
  const again = await applyIptables(runner, rendered.value)
  runner.take()
  return {
    name,
    planRenderMs: rendered.ms,
    applyMs: applied.ms,
    writeMs: writes.reduce((sum, c) => sum + c.ms, 0),
    writes: describeWrites(writes),
    converged: !again.changed,
  }
}

/** Peak RSS of a separate process doing one plan + render + apply of `count` Mappings into `netns`. */
async function syncRss(netns: string, count: number): Promise<{rssMb: number; ms: number}> {
  const script = fileURLToPath(new URL('sync-once.ts', import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', script, netns, String(count)], {stdio: ['ignore', 'pipe', 'inherit']})
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`sync-once exited with ${code}`)
  return JSON.parse(out) as {rssMb: number; ms: number}
}

async function main(): Promise<boolean> {
  const targets: Target[] = []

  console.log('## Full sync into an empty namespace (plan + render + apply) vs the floor (same payloads, restore tools only)')
  const fullRows: (string | number)[][] = []
  for (const count of [1000, 10_000]) {
    const runs: FullSync[] = []
    for (let run = 0; run < REPEATS; run++) runs.push(await fullSync(count, run))
    const planRender = median(runs.map((r) => r.planRenderMs))
    const apply = median(runs.map((r) => r.applyMs))
    const floor = median(runs.map((r) => r.floorMs))
    fullRows.push([count, planRender, apply, planRender + apply, floor, (planRender + apply) / floor, apply / floor])
    targets.push({name: `full sync ${count}: smartnat total / floor`, value: (planRender + apply) / floor, limit: 1.5, unit: 'x'})
  }
  printTable(['Mappings', 'plan+render ms', 'apply ms', 'total ms', 'floor ms', 'total/floor', 'apply/floor'], fullRows)

  console.log(`\n## Changes at 10,000 Mappings (medians of ${REPEATS})`)
  const {host, addresses} = syntheticHost()
  const count = 10_000
  const last = count - 1
  const rows: (string | number)[][] = []
  const rss = await withHostNamespace('changes', host, async (ns) => {
    const runner = new CountingRunner(ns.runner)
    const base = syntheticSnapshot(count, addresses)
    await applyIptables(runner, desiredOf(base, host))
    runner.take()
    const scenarios: [string, () => Snapshot][] = [
      ['no-op resync', () => base],
      ['pod change (egress set)', () => withSlice(base, last, syntheticPods(last, 1))],
      ['servicePort change (one DNAT rule)', () => withPorts(base, last, (ports) => [{...ports[0]!, servicePort: ports[0]!.servicePort + 1000}, ...ports.slice(1)])],
      ['port added', () => withPorts(base, last, (ports) => [...ports, {port: 60000, protocol: 'tcp', servicePort: ports[0]!.servicePort}])],
      ['Mapping deleted', () => ({...base, mappings: base.mappings.filter((_, i) => i !== last)})],
    ]
    for (const [name, snapshotOf] of scenarios) {
      const results: ChangeResult[] = []
      for (let run = 0; run < REPEATS; run++) {
        results.push(await change(name, runner, snapshotOf(), host))
        // Back to the base state, so every run starts from the same kernel state.
        await applyIptables(runner, desiredOf(base, host))
        runner.take()
      }
      const r = results[0]!
      const applyMs = median(results.map((x) => x.applyMs))
      const writeMs = median(results.map((x) => x.writeMs))
      rows.push([name, median(results.map((x) => x.planRenderMs)), applyMs, writeMs, r.writes || 'none', results.every((x) => x.converged) ? 'yes' : 'NO'])
      if (name === 'no-op resync') {
        targets.push({name: 'no-op resync 10,000: kernel writes', value: results.reduce((n, x) => n + (x.writes ? x.writes.split(', ').length : 0), 0), limit: 0, unit: ''})
        targets.push({name: 'no-op resync 10,000: apply (read + diff)', value: applyMs, limit: 1000, unit: 'ms'})
      } else {
        targets.push({name: `${name} at 10,000: apply, call to kernel`, value: applyMs, limit: 200, unit: 'ms'})
        targets.push({name: `${name} at 10,000: kernel writes alone`, value: writeMs, limit: 200, unit: 'ms'})
      }
    }
    return syncRss(ns.name, count)
  })
  printTable(['change', 'plan+render ms', 'apply ms (read+diff+write)', 'writes ms', 'writes', 'converged'], rows)
  console.log(`\nseparate process, plan + render + apply of ${count} (no-op over the loaded state): ${rss.ms.toFixed(0)} ms, peak RSS ${rss.rssMb.toFixed(0)} MB`)
  targets.push({name: 'peak RSS of a sync at 10,000', value: rss.rssMb, limit: 300, unit: 'MB'})

  console.log(`\n## ${ORIGINAL_COUNT} Mappings: smartnat vs the original controller's way (one process per rule and entry, each checked first)`)
  const small = syntheticSnapshot(ORIGINAL_COUNT, addresses)
  const ours = await withHostNamespace('ours500', host, async (ns) => (await timed(() => applyIptables(ns.runner, desiredOf(small, host)))).ms)
  const original = await withHostNamespace('orig500', host, async (ns) => {
    const counting = new CountingRunner(ns.runner)
    const {ms} = await timed(() => applyOriginalWay(counting, plan(small, host, BENCH_PLAN_OPTIONS).model))
    return {ms, processes: counting.take().length}
  })
  printTable(
    ['way', 'processes', 'ms', 'ratio'],
    [
      ['smartnat (read, diff, 3 restores)', 7, ours, 1],
      ['original (per rule/entry, -C/test first)', original.processes, original.ms, original.ms / ours],
    ],
  )
  console.log('')
  return printTargets(targets)
}

function withSlice(base: Snapshot, index: number, pods: string[]): Snapshot {
  const endpointSlices = [...base.endpointSlices]
  endpointSlices[index] = {...endpointSlices[index]!, endpoints: pods.map((address) => ({addresses: [address], conditions: {ready: true}}))}
  return {...base, endpointSlices}
}

type Ports = {port: number; protocol: string; servicePort: number}[]

function withPorts(base: Snapshot, index: number, edit: (ports: Ports) => Ports): Snapshot {
  const mappings = [...base.mappings]
  const mapping = mappings[index]!
  const ports = edit(mapping.spec!.ports as Ports)
  mappings[index] = {...mapping, spec: {...mapping.spec, ports}}
  // The Service must offer every servicePort the Mapping asks for.
  const services = [...base.services]
  const service = services[index]!
  services[index] = {...service, spec: {...service.spec, ports: ports.map((p) => ({port: p.servicePort, protocol: 'TCP'}))}}
  return {...base, mappings, services}
}

const reason = kernelUnavailableReason()
if (reason) {
  if (process.env.CI) throw new Error(`${reason}; CI must run it`)
  console.log(`skipped: ${reason}`)
} else {
  process.exitCode = (await main()) ? 0 : 1
}
