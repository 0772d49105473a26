/**
 * Kernel benchmark (root): syncs synthetic Mappings into throwaway network namespaces with each
 * backend and compares with the floor (the same payloads fed straight to ipset/iptables-restore/
 * nft/ip), measures changes at 10,000 Mappings both as the watch applies them (trusting the state it
 * applied last) and as a one-shot sync does (reading the kernel back), the peak RSS of a sync and of
 * a watch holding 10,000 Mappings, and the original controller's one-process-per-rule way.
 *
 *   npm run bench:kernel [-- iptables|nftables]
 */
import {spawn, spawnSync} from 'node:child_process'
import {existsSync, mkdirSync, writeFileSync} from 'node:fs'
import {createRequire} from 'node:module'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import type {Backend} from '../src/lib/backend/backend.js'
import {createBackend, type BackendName} from '../src/lib/backend/registry.js'
import type {HostInfo, Snapshot} from '../src/lib/plan/model.js'
import {plan} from '../src/lib/plan/plan.js'
import {toYaml} from '../src/lib/source/yaml.js'
import {readAhead} from '../src/lib/sync/once.js'
import {CountingRunner, runKernelBenchmark, withHostNamespace, type BenchNamespace, type CountedCall} from './netns.js'
import {BUILD_DIR, buildCli, runCli, type CliRun} from './cli.js'
import {desiredOf, fullApplyAndFloor, writesOf, type FullApply} from './full-apply.js'
import {applyOriginalWay} from './original.js'
import {median, printTable, printTargets, timed, type Target} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticPods, syntheticSnapshot, withPorts, withSlice} from './synthetic.js'

const REPEATS = 3
const ORIGINAL_COUNT = 500
const CHANGE_COUNT = 10_000
/** The one-change target per backend (call to kernel, watch-style). */
const CHANGE_LIMIT_MS: Record<BackendName, number> = {iptables: 200, nftables: 100}

interface FullSync extends FullApply {
  /** The same sync in a process of its own that has planned nothing before, as `smartnat sync` runs. */
  coldMs: number
}

/** One full sync into an empty namespace, then the floor: the same payloads straight into another empty one. */
async function fullSync(name: BackendName, count: number, run: number): Promise<FullSync> {
  const {host, addresses} = syntheticHost()
  const snapshot = syntheticSnapshot(count, addresses)
  const applied = await fullApplyAndFloor(name, snapshot, host, {smartnat: `${name.slice(0, 3)}full${count}-${run}`, floor: `${name.slice(0, 3)}floor${count}-${run}`})
  const coldMs = await withHostNamespace(`${name.slice(0, 3)}cold${count}-${run}`, host, async (ns) => {
    return (await childOutput('full-sync-cold.ts', [ns.name, name, String(count)])).ms!
  })
  return {...applied, coldMs}
}

interface ChangeResult {
  planRenderMs: number
  /** Watch-style: diffed against the state applied last, no read. */
  cachedMs: number
  cachedWrites: CountedCall[]
  /** One-shot: reads the kernel back, then diffs. */
  readMs: number
  readWrites: CountedCall[]
  /** As `smartnat sync` runs it: the kernel read while plan + render run, then the apply. */
  syncMs: number
  converged: boolean
}

function describeWrites(calls: readonly CountedCall[]): string {
  return calls.map((c) => `${c.command} ${c.inputLines} lines`).join(', ') || 'none'
}

/** The writes as a set: tools that run at once (ipset and iptables-restore) finish in either order. */
function sameWrites(a: readonly CountedCall[], b: readonly CountedCall[]): boolean {
  const key = (calls: readonly CountedCall[]) => calls.map((c) => `${c.command} ${c.inputLines} lines`).sort().join(', ')
  return key(a) === key(b)
}

function writeMs(calls: readonly CountedCall[]): number {
  return calls.reduce((sum, c) => sum + c.ms, 0)
}

/**
 * Applies `snapshot` over the base state both ways: trusting the base state (as the watch does),
 * and reading the kernel (as a one-shot sync does), going back to the base state after each.
 * Checks that a reading apply afterwards writes nothing.
 */
async function change(backend: Backend, runner: CountingRunner, base: unknown, snapshot: Snapshot, host: HostInfo): Promise<ChangeResult> {
  const rendered = await timed(() => desiredOf(backend, snapshot, host))
  runner.take()
  const cached = await timed(() => backend.apply(rendered.value, {assumeActual: base}))
  const cachedWrites = writesOf(runner.take())
  const again = await backend.apply(rendered.value)
  const converged = !again.changed
  await backend.apply(base, {assumeActual: rendered.value})
  runner.take()
  const read = await timed(() => backend.apply(rendered.value))
  const readWrites = writesOf(runner.take())
  await backend.apply(base)
  runner.take()
  const sync = await timed(async () => {
    const kernelRead = readAhead(backend)
    await backend.apply(desiredOf(backend, snapshot, host), {kernelRead})
  })
  await backend.apply(base)
  runner.take()
  return {planRenderMs: rendered.ms, cachedMs: cached.ms, cachedWrites, readMs: read.ms, readWrites, syncMs: sync.ms, converged}
}

const CHILD_SCRIPTS = ['watch-rss.ts', 'full-sync-cold.ts']

/**
 * Compiles the scripts whose memory is measured, with what they import, the way the installed CLI
 * is built: run through the TypeScript loader they would carry its compiler's memory too (~50 MB).
 */
function compileChildren(): void {
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc')
  const sources = CHILD_SCRIPTS.map((script) => fileURLToPath(new URL(script, import.meta.url)))
  const options = ['--outDir', BUILD_DIR, '--rootDir', fileURLToPath(new URL('..', import.meta.url)), '--strict', '--target', 'ES2022']
  const more = ['--module', 'NodeNext', '--moduleResolution', 'NodeNext', '--skipLibCheck', '--types', 'node']
  // Type errors do not stop the output; a script that was not written does.
  const result = spawnSync(process.execPath, [tsc, ...options, ...more, ...sources], {encoding: 'utf8'})
  for (const script of CHILD_SCRIPTS) {
    if (!existsSync(compiledPath(script))) throw new Error(`compiling ${script} failed:\n${result.stdout}${result.stderr}`)
  }
}

function compiledPath(script: string): string {
  return join(BUILD_DIR, 'bench', script.replace(/\.ts$/, '.js'))
}

/** The synthetic cluster as one manifest file, as an operator hands it to `smartnat sync --from-file`. */
function writeManifests(count: number): string {
  const {addresses} = syntheticHost()
  const {mappings, services, endpointSlices} = syntheticSnapshot(count, addresses)
  const file = join(BUILD_DIR, `manifests-${count}.yaml`)
  mkdirSync(BUILD_DIR, {recursive: true})
  writeFileSync(file, [...mappings, ...services, ...endpointSlices].map((object) => toYaml(object)).join('---\n'))
  return file
}

/** `smartnat sync --from-file` itself, compiled, into `ns`: wall time and peak RSS of the process; fails unless it exits 0. */
function cliSync(ns: BenchNamespace, backend: BackendName, manifests: string): Promise<CliRun> {
  return runCli([
    ...['sync', '--from-file', manifests, '--netns', ns.name, '--backend', backend],
    ...['--snat', '--interfaces', '^ext\\d+$', '--lock-file', join(BUILD_DIR, `lock-${ns.name}`), '--json'],
  ])
}

/** What a separate process running the compiled `script` (watch-rss.ts, full-sync-cold.ts) against `netns` prints, parsed. */
async function childOutput(script: string, args: string[]): Promise<Record<string, number>> {
  const child = spawn(process.execPath, [compiledPath(script), ...args], {stdio: ['ignore', 'pipe', 'inherit']})
  let out = ''
  child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  if (code !== 0) throw new Error(`${script} exited with ${code}`)
  return JSON.parse(out) as Record<string, number>
}

async function benchBackend(name: BackendName, targets: Target[], manifests: string): Promise<void> {
  console.log(`\n# ${name}\n`)
  console.log(`## Full sync into an empty namespace (plan + render + apply) vs the floor (same payloads, kernel tools only), medians of ${REPEATS}`)
  const fullRows: (string | number)[][] = []
  for (const count of [1000, 10_000]) {
    const runs: FullSync[] = []
    for (let run = 0; run < REPEATS; run++) runs.push(await fullSync(name, count, run))
    const planRender = median(runs.map((r) => r.planRenderMs))
    const apply = median(runs.map((r) => r.applyMs))
    const floor = median(runs.map((r) => r.floorMs))
    const total = median(runs.map((r) => r.totalMs))
    const cold = median(runs.map((r) => r.coldMs))
    fullRows.push([count, planRender, apply, total, cold, floor, total / floor, cold / floor, apply / floor])
    // The targets as set: iptables, the whole sync at both sizes, judged as `smartnat sync` runs it
    // (a process that has planned nothing before); nftables, the apply at 10,000.
    if (name === 'iptables') targets.push({name: `${name} full sync ${count}, fresh process: total / floor`, value: cold / floor, limit: 1.5, unit: 'x'})
    else if (count === 10_000) targets.push({name: `${name} full apply ${count}: apply / floor`, value: apply / floor, limit: 1.5, unit: 'x'})
  }
  console.log('("total" in this process, which planned before; "fresh" in a process of its own that planned nothing before)')
  printTable(['Mappings', 'plan+render ms', 'apply ms', 'total ms', 'fresh ms', 'floor ms', 'total/floor', 'fresh/floor', 'apply/floor'], fullRows)

  console.log(`\n## Changes at ${CHANGE_COUNT.toLocaleString('en')} Mappings (medians of ${REPEATS}); "cached" trusts the state applied last (watch), "read" reads the kernel (sync)`)
  const {host, addresses} = syntheticHost()
  const last = CHANGE_COUNT - 1
  const rows: (string | number)[][] = []
  const rss = await withHostNamespace(`${name.slice(0, 3)}changes`, host, async (ns) => {
    const runner = new CountingRunner(ns.runner)
    const backend = createBackend(name, runner)
    const base = syntheticSnapshot(CHANGE_COUNT, addresses)
    const baseState = desiredOf(backend, base, host)
    await backend.apply(baseState)
    runner.take()
    const scenarios: [string, () => Snapshot][] = [
      ['no-op resync', () => base],
      ['pod endpoint added (egress set)', () => withSlice(base, last, [...syntheticPods(last), syntheticPods(last, 2)[0]])],
      ['servicePort change (one DNAT)', () => withPorts(base, last, (ports) => [{...ports[0]!, servicePort: ports[0]!.servicePort + 1000}, ...ports.slice(1)])],
      ['port added', () => withPorts(base, last, (ports) => [...ports, {port: 60000, protocol: 'tcp', servicePort: ports[0]!.servicePort}])],
      ['Mapping deleted', () => ({...base, mappings: base.mappings.filter((_, i) => i !== last)})],
    ]
    for (const [scenario, snapshotOf] of scenarios) {
      const results: ChangeResult[] = []
      for (let run = 0; run < REPEATS; run++) results.push(await change(backend, runner, baseState, snapshotOf(), host))
      const cachedMs = median(results.map((x) => x.cachedMs))
      const readMs = median(results.map((x) => x.readMs))
      const syncMs = median(results.map((x) => x.syncMs))
      const writesMs = median(results.map((x) => writeMs(x.cachedWrites)))
      const writes = describeWrites(results[0]!.cachedWrites)
      const agreed = results.every((x) => x.converged && sameWrites(x.readWrites, x.cachedWrites))
      rows.push([scenario, median(results.map((x) => x.planRenderMs)), cachedMs, readMs, syncMs, writesMs, writes, agreed ? 'yes' : 'NO'])
      const writeCount = results.reduce((n, x) => n + x.cachedWrites.length + x.readWrites.length, 0)
      if (scenario === 'no-op resync') {
        targets.push({name: `${name} no-op at 10,000: kernel writes (cached and read)`, value: writeCount, limit: 0, unit: ''})
        if (name === 'iptables') targets.push({name: `${name} no-op at 10,000: sync reading the kernel (plan + render + apply)`, value: syncMs, limit: 1000, unit: 'ms'})
      } else {
        targets.push({name: `${name} ${scenario} at 10,000: apply, call to kernel (cached)`, value: cachedMs, limit: CHANGE_LIMIT_MS[name], unit: 'ms'})
      }
      if (!agreed) {
        targets.push({name: `${name} ${scenario}: converged, same writes either way`, value: 1, limit: 0, unit: ''})
      }
    }
    // Compiled, like the installed CLI (see compileChildren).
    return {watch: await childOutput('watch-rss.ts', [ns.name, name, String(CHANGE_COUNT)])}
  })
  printTable(['change', 'plan+render ms', 'apply ms, cached', 'apply ms, read', 'sync ms (read ahead)', 'writes ms', 'writes', 'converged'], rows)
  const cli = await withHostNamespace(`${name.slice(0, 3)}cli`, host, async (ns) => {
    await ns.runner.run('sysctl', ['-w', 'net.ipv4.ip_forward=1'])
    const full = await cliSync(ns, name, manifests)
    return {full, again: await cliSync(ns, name, manifests)}
  })
  console.log(
    `\nsmartnat sync --from-file (compiled CLI, ${CHANGE_COUNT} Mappings in one manifest file): into an empty namespace ${cli.full.ms.toFixed(0)} ms, ` +
      `peak RSS ${cli.full.rssMb.toFixed(0)} MB; again, nothing to write, ${cli.again.ms.toFixed(0)} ms, peak RSS ${cli.again.rssMb.toFixed(0)} MB`,
  )
  console.log(
    `separate process, watch loop holding ${CHANGE_COUNT}: first pass ${rss.watch.firstMs!.toFixed(0)} ms, ` +
      `passes after one change (median of ${rss.watch.changes}) ${rss.watch.changeMs!.toFixed(0)} ms, periodic resync ${rss.watch.resyncMs!.toFixed(0)} ms, ` +
      `peak RSS ${rss.watch.rssMb!.toFixed(0)} MB`,
  )
  if (name === 'iptables') {
    targets.push({name: `${name} peak RSS of smartnat sync --from-file at 10,000`, value: Math.max(cli.full.rssMb, cli.again.rssMb), limit: 300, unit: 'MB'})
    targets.push({name: `${name} peak RSS of a watch holding 10,000`, value: rss.watch.rssMb!, limit: 300, unit: 'MB'})
  }
}

async function benchOriginal(): Promise<void> {
  console.log(`\n## ${ORIGINAL_COUNT} Mappings: smartnat vs the original controller's way (one process per rule and entry, each checked first)`)
  const {host, addresses} = syntheticHost()
  const small = syntheticSnapshot(ORIGINAL_COUNT, addresses)
  const ours = await withHostNamespace('ours500', host, async (ns) => {
    const backend = createBackend('iptables', ns.runner)
    return (await timed(() => backend.apply(desiredOf(backend, small, host)))).ms
  })
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
}

async function main(only: string | undefined): Promise<boolean> {
  compileChildren()
  buildCli()
  const manifests = writeManifests(CHANGE_COUNT)
  const targets: Target[] = []
  for (const name of ['iptables', 'nftables'] as const) if (!only || only === name) await benchBackend(name, targets, manifests)
  if (!only) await benchOriginal()
  console.log('')
  return printTargets(targets)
}

await runKernelBenchmark(() => main(process.argv[2]))
