/**
 * The CPU a watch pass after one change spends in this process, at 10,000 Mappings, both backends,
 * without a kernel: the daemon's own WatchLoop and syncPass (the kept plan, the backend's kept render
 * parts) over an in-memory source that sorts its objects as the API source does, and a runner that
 * answers reads with an empty kernel and records the writes. CPU is counted, not timed against a
 * clock: `process.cpuUsage()` per pass, and a CPU profile (node:inspector) of the change passes,
 * its self time summed per function and per step of the pass. No root needed.
 *
 *   node --import tsx bench/pass-cpu.ts [--count N] [--changes N] [--only iptables|nftables] [--top N] [--profile FILE]
 */
import {writeFileSync} from 'node:fs'
import {Session, type Profiler} from 'node:inspector/promises'
import {loadavg} from 'node:os'
import {parseArgs} from 'node:util'
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/registry.js'
import {HostChanges} from '../src/lib/host/host-changes.js'
import type {Follower, RunOptions, RunResult, Runner} from '../src/lib/host/runner.js'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../src/lib/mapping/types.js'
import {SmartnatMetrics} from '../src/lib/observe/metrics.js'
import {plan} from '../src/lib/plan/plan.js'
import type {HostInfo, Snapshot} from '../src/lib/plan/model.js'
import type {SnapshotSource} from '../src/lib/source/source.js'
import {SortedObjects} from '../src/lib/source/kube/sorted.js'
import {syncPass, WatchLoop} from '../src/lib/sync/watch.js'
import {printTable} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'

const {values} = parseArgs({
  options: {
    count: {type: 'string', default: '10000'},
    changes: {type: 'string', default: '20'},
    only: {type: 'string'},
    top: {type: 'string', default: '25'},
    profile: {type: 'string'},
  },
})
const count = Number(values.count)
const changes = Number(values.changes)
const top = Number(values.top)

/** Where a profile sample's time goes: the innermost of these functions on its stack names the step. */
const STEPS: [RegExp, string][] = [
  [/^dropVanishedFlows$/, 'conntrack cleanup'],
  [/^forward$|Forward/, 'forward check'],
  [/^(guardRemoval|programmedIn|programmedMappings)$/, 'removal guard'],
  [/^ruleCount$/, 'rule count'],
  [/^apply$/, 'apply (diff, payloads)'],
  [/^render$/, 'render'],
  [/^plan$/, 'plan'],
  [/^(snapshot|sorted)$/, 'snapshot'],
  [/^(same|settle|equivalent)$/, 'skip check, settle'],
  [/^(succeeded|syncSucceeded)$/, 'pass report'],
]

type Kind = {name: string; make: (k: number) => void}

/** A SnapshotSource over sorted caches, changed by the harness. */
class MemorySource implements SnapshotSource {
  readonly mappings = new SortedObjects<MappingResource>()
  readonly services = new SortedObjects<ServiceResource>()
  readonly slices = new SortedObjects<EndpointSliceResource>()
  private readonly listeners = new Set<() => void>()

  constructor(snapshot: Snapshot) {
    for (const m of snapshot.mappings) this.mappings.set(m)
    for (const s of snapshot.services) this.services.set(s)
    for (const s of snapshot.endpointSlices) this.slices.set(s)
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  health() {
    return {synced: true}
  }

  snapshot(): Snapshot {
    return {mappings: this.mappings.sorted() as MappingResource[], services: this.services.sorted() as ServiceResource[], endpointSlices: this.slices.sorted() as EndpointSliceResource[]}
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  changed(): void {
    for (const listener of this.listeners) listener()
  }
}

/** The monotonic clock in µs, as V8's profiler stamps its samples (both read CLOCK_MONOTONIC). */
function now(): number {
  return Number(process.hrtime.bigint() / 1000n)
}

function keyOf(object: {metadata: {namespace?: string; name?: string}}): string {
  return `${object.metadata.namespace}/${object.metadata.name}`
}

/** Answers reads with an empty kernel and the synthetic host; records what each pass wrote. */
class FakeKernel implements Runner {
  writes = 0
  /** When each write was started, in µs of the monotonic clock the profiler's timestamps use. */
  readonly writtenAt: number[] = []
  constructor(private readonly ipAddr: string) {}

  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    if (options.input !== undefined || (command === 'ipset' && args[0] === 'restore')) {
      this.writes++
      this.writtenAt.push(now())
    }
    const stdout = command === 'ip' && args.includes('addr') ? this.ipAddr : command === 'sysctl' ? '2\n'.repeat(args.length) : command === 'nft' && args.includes('-j') ? '{"nftables":[]}' : ''
    return {stdout, stderr: '', exitCode: 0}
  }

  follow(): Follower {
    return {ended: new Promise(() => {}), stop: async () => {}}
  }
}

function ipAddrOf(host: HostInfo): string {
  return JSON.stringify(
    host.interfaces.map((i, k) => ({ifindex: k + 2, ifname: i.name, addr_info: i.addresses.map((a) => ({family: 'inet', local: a.address, prefixlen: a.prefixLength}))})),
  )
}

/** The bench's six kinds of change (bench/watch-latency.ts), made in the source's caches as a watch event would. */
function changeKinds(source: MemorySource, base: Snapshot): Kind[] {
  const target = (k: number) => (k * 7919) % base.mappings.length
  const first = base.mappings[0]!
  const created = (k: number) => `bench-new-${k}`
  const replace = <T extends {metadata: {namespace?: string; name?: string}}>(cache: SortedObjects<T>, named: T, edit: (object: T) => T) => {
    const object = cache.get(named.metadata.namespace ?? '', named.metadata.name ?? '')!
    cache.set(edit({...object, metadata: {...object.metadata}}))
  }
  return [
    {
      name: 'endpoint added',
      make: (k) => replace(source.slices, base.endpointSlices[target(k)]!, (s) => ({...s, endpoints: [...(s.endpoints ?? []), {addresses: [`198.19.255.${(k % 250) + 1}`], conditions: {ready: true}}]})),
    },
    {
      name: 'endpoint removed',
      make: (k) => replace(source.slices, base.endpointSlices[target(k)]!, (s) => ({...s, endpoints: base.endpointSlices[target(k)]!.endpoints})),
    },
    {
      name: 'Mapping created',
      make: (k) => {
        const spec = first.spec!
        const mapping: MappingResource = {
          apiVersion: first.apiVersion,
          kind: 'Mapping',
          metadata: {namespace: first.metadata.namespace, name: `bench-new-${k}`, generation: 1, creationTimestamp: '2025-01-01T00:00:00Z'},
          spec: {addresses: spec.addresses, serviceName: spec.serviceName, mode: spec.mode, ports: [{port: 60000 + k, protocol: 'tcp', servicePort: (spec.ports as {servicePort: number}[])[0]!.servicePort}]},
        }
        source.mappings.set(mapping)
      },
    },
    {
      name: 'Mapping updated',
      make: (k) => {
        const mapping = base.mappings[target(k >> 1)]!
        const ports = mapping.spec!.ports as unknown[]
        replace(source.mappings, mapping, (m) => ({...m, metadata: {...m.metadata, generation: (m.metadata.generation ?? 1) + 1}, spec: {...m.spec, ports: k % 2 === 0 ? ports.slice(0, 1) : ports}}))
      },
    },
    {name: 'Mapping deleted', make: (k) => void source.mappings.delete(first.metadata.namespace ?? '', created(k))},
    {
      name: 'allow-list changed',
      make: (k) => {
        const mapping = base.mappings[target(k)]!
        replace(source.mappings, mapping, (m) => ({...m, metadata: {...m.metadata, generation: (m.metadata.generation ?? 1) + 1}, spec: {...m.spec, allowedSources: [`198.18.${100 + (k % 100)}.0/24`]}}))
      },
    },
  ]
}

/** Each function's self time in the profile, and each step's (see STEPS), in ms. */
/** A change: from when it was made to when the loop was done with its pass, and the pass's kernel writes (µs, see now()). */
interface PassSpan {
  start: number
  end: number
  writes: number[]
}

/** Which part of a change's handling a sample at `t` falls in: before its first kernel write, between writes, after its last one, or outside. */
function phaseAt(t: number, spans: readonly PassSpan[]): string {
  const span = spans.find((p) => p.start <= t && t <= p.end)
  if (span === undefined) return 'outside'
  if (span.writes.length === 0) return 'pass without a write'
  if (t < span.writes[0]!) return 'before the first write'
  if (t > span.writes.at(-1)!) return 'after the last write'
  return 'between writes'
}

function selfTimes(profile: Profiler.Profile, spans: readonly PassSpan[]): {functions: Map<string, number>; steps: Map<string, number>; phases: Map<string, number>; total: number} {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]))
  const parent = new Map<number, number>()
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id)
  const stepOf = new Map<number, string>()
  const step = (id: number): string => {
    const known = stepOf.get(id)
    if (known !== undefined) return known
    const name = byId.get(id)!.callFrame.functionName
    const own = STEPS.find(([pattern]) => pattern.test(name))?.[1]
    const up = parent.get(id)
    const result = own ?? (up === undefined ? 'other' : step(up))
    stepOf.set(id, result)
    return result
  }
  const functions = new Map<string, number>()
  const steps = new Map<string, number>()
  const phases = new Map<string, number>()
  let total = 0
  let t = profile.startTime
  const deltas = profile.timeDeltas ?? []
  const samples = profile.samples ?? []
  for (let i = 0; i < samples.length; i++) {
    // A sample's time is the interval until the next one.
    t += deltas[i] ?? 0
    const ms = (deltas[i + 1] ?? 0) / 1000
    const node = byId.get(samples[i]!)!
    const {functionName, url, lineNumber} = node.callFrame
    if (functionName === '(idle)' || functionName === '(program)') continue
    const s = functionName === '(garbage collector)' ? 'garbage collector' : step(node.id)
    const label = `${s}: ${functionName || '(anonymous)'} ${url.replace(/^.*\/(src|bench|node_modules)\//, '$1/')}:${lineNumber + 1}`
    functions.set(label, (functions.get(label) ?? 0) + ms)
    steps.set(s, (steps.get(s) ?? 0) + ms)
    const phase = phaseAt(t, spans)
    phases.set(phase, (phases.get(phase) ?? 0) + ms)
    total += ms
  }
  return {functions, steps, phases, total}
}

async function measure(name: BackendName, session: Session): Promise<void> {
  const {host, addresses} = syntheticHost()
  const base = syntheticSnapshot(count, addresses)
  // Statuses as the first round of writebacks leaves them: the conntrack cleanup reads them.
  const verdicts = new Map(plan(base, host, BENCH_PLAN_OPTIONS).verdicts.map((v) => [`${v.namespace}/${v.name}`, v]))
  for (const mapping of base.mappings) mapping.status = {configuredAddresses: verdicts.get(keyOf(mapping))!.configuredAddresses}
  const source = new MemorySource(base)
  const runner = new FakeKernel(ipAddrOf(host))
  const hostChanges = new HostChanges(runner)
  hostChanges.start()
  const pass = syncPass({runner, backend: createBackend(name, runner, {rendersAgain: true})}, {plan: BENCH_PLAN_OPTIONS, interfacesPattern: /^ext\d+$/}, hostChanges)
  let passDone: (() => void) | undefined
  const cpu: number[] = []
  const spans: PassSpan[] = []
  const loop = new WatchLoop({
    source,
    sync: async (load, options) => {
      const before = process.cpuUsage()
      const report = await pass(load, options)
      const used = process.cpuUsage(before)
      cpu.push((used.user + used.system) / 1000)
      passDone?.()
      return report
    },
    observer: new SmartnatMetrics(),
    minIntervalMs: 0,
    resyncIntervalMs: 3_600_000,
    hostChanges,
  })
  const next = () => new Promise<void>((resolve) => (passDone = resolve))
  let done = next()
  await loop.start()
  await done
  // Every kind three times, unprofiled: the backends build their kept parts on the first change, and V8 compiles.
  const kinds = changeKinds(source, base)
  for (let round = 0; round < 3; round++) {
    for (const kind of kinds) {
      done = next()
      kind.make(changes + round)
      source.changed()
      await done
    }
  }
  cpu.length = 0
  const rows: (string | number)[][] = []
  const profiles: Profiler.Profile[] = []
  for (const kind of kinds) {
    const from = cpu.length
    const writesBefore = runner.writes
    await session.post('Profiler.start')
    for (let k = 0; k < changes; k++) {
      done = next()
      const start = now()
      const writes = runner.writtenAt.length
      kind.make(k)
      source.changed()
      await done
      // The loop reports the pass (log, metrics) after it returns.
      await new Promise((resolve) => setImmediate(resolve))
      spans.push({start, end: now(), writes: runner.writtenAt.slice(writes)})
    }
    const {profile} = await session.post('Profiler.stop')
    profiles.push(profile)
    const self = selfTimes(profile, spans)
    const passes = cpu.length - from
    const mean = cpu.slice(from).reduce((a, b) => a + b, 0) / passes
    rows.push([kind.name, passes, (runner.writes - writesBefore) / passes, mean.toFixed(1), (self.total / passes).toFixed(1)])
  }
  await loop.stop()
  await hostChanges.stop()
  console.log(`\n## ${name}: ${count.toLocaleString('en')} Mappings, ${changes} changes of each kind; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`)
  printTable(['change', 'passes', 'writes per pass', 'CPU ms per pass (cpuUsage)', 'profile ms per pass'], rows)
  const all = profiles.map((profile) => selfTimes(profile, spans))
  const passes = kinds.length * changes
  const sum = (pick: (s: ReturnType<typeof selfTimes>) => Map<string, number>) => {
    const merged = new Map<string, number>()
    for (const s of all) for (const [k, v] of pick(s)) merged.set(k, (merged.get(k) ?? 0) + v)
    return [...merged].sort((a, b) => b[1] - a[1])
  }
  console.log('\nProfile self time per pass by part of the pass, every kind:\n')
  printTable(['part', 'ms per pass'], sum((s) => s.phases).map(([k, v]) => [k, (v / passes).toFixed(2)]))
  console.log('\nProfile self time per pass by step, every kind:\n')
  printTable(['step', 'ms per pass'], sum((s) => s.steps).map(([k, v]) => [k, (v / passes).toFixed(2)]))
  console.log(`\nTop ${top} functions by self time per pass:\n`)
  printTable(['function', 'ms per pass'], sum((s) => s.functions).slice(0, top).map(([k, v]) => [k, (v / passes).toFixed(2)]))
  if (values.profile) writeFileSync(`${values.profile}.${name}.cpuprofile`, JSON.stringify(profiles.at(-3)))
}

const session = new Session()
session.connect()
await session.post('Profiler.enable')
await session.post('Profiler.setSamplingInterval', {interval: 100})
for (const name of BACKEND_NAMES) if (values.only === undefined || values.only === name) await measure(name, session)
session.disconnect()
