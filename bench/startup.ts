/**
 * CLI start-up: the built CLI (bin/run.cjs, as installed) against `node -e 0` measured in the same
 * run, as a ratio, for --version, a command's --help, a dry-run sync of one Mapping from a file and,
 * as root, status on an empty host (a throwaway network namespace). With --before REF, the CLI as
 * built at git commit REF (a clone in tmp/bench-build) runs in the same run, interleaved, for a
 * before/after comparison. Uses hyperfine when installed (rounds of a few runs of every command),
 * else its own loop of spawns, and says which. Prints PASS/FAIL per target (on the wall-time medians) and exits 0.
 *
 *   npm run bench:startup [-- RUNS] [--before REF]
 */
import {spawnSync} from 'node:child_process'
import {mkdtempSync, readFileSync, rmSync, symlinkSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {BUILD_DIR, buildCli} from './cli.js'
import {createNamespace, kernelUnavailableReason, type BenchNamespace} from './netns.js'
import {median, printTable, printTargets, type Target} from './report.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const {values: options, positionals} = parseArgs({options: {before: {type: 'string'}}, allowPositionals: true})
const RUNS = Number(positionals[0] ?? 10)
const WARMUP = 2

interface Case {
  name: string
  /** Arguments after `node`: a script and its arguments, the CLI's entry coming from `entry`. */
  argv: (entry: string) => string[]
  /** Most a start may take, as a multiple of `node -e 0`. */
  limit?: number
  /** status exits non-zero on a host with problems or drift: that is its answer, not a failure. */
  anyExit?: boolean
}

interface Timing {
  /** Median wall time, ms. */
  ms: number
  /** Mean CPU time (user + system), ms: what other work on the machine moves least. */
  cpuMs?: number
}

function cases(namespace: BenchNamespace | undefined, emptyDir: string): Case[] {
  const cli = (entry: string, ...args: string[]) => [entry, ...args]
  return [
    {name: 'smartnat --version', argv: (entry) => cli(entry, '--version'), limit: 1.3},
    {name: 'smartnat sync --help', argv: (entry) => cli(entry, 'sync', '--help'), limit: 1.3},
    {name: 'smartnat explain --help', argv: (entry) => cli(entry, 'explain', '--help'), limit: 1.3},
    {
      name: 'smartnat sync --dry-run (1 Mapping, file)',
      argv: (entry) => cli(entry, 'sync', '--dry-run', '--from-file', join(ROOT, 'examples', 'echo-service.yaml'), '--assume-addresses', '198.18.0.10'),
      limit: 1.6,
    },
    ...(namespace
      ? [{name: 'smartnat status (empty host)', argv: (entry: string) => cli(entry, 'status', '--from-file', emptyDir, '--netns', namespace.name), limit: 2, anyExit: true}]
      : []),
  ]
}

interface Run {
  name: string
  argv: string[]
  anyExit?: boolean
}

const quote = (arg: string) => (/^[\w./:,=@-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)

/** Runs of each command per hyperfine call: hyperfine runs one command's runs back to back, so a burst of other work would land on one command alone. */
const RUNS_PER_ROUND = 4

/**
 * Timing of each run by hyperfine, called in rounds of RUNS_PER_ROUND runs of every command, so
 * that each command's runs are spread over the whole measurement as the others' are.
 */
function withHyperfine(runs: Run[]): Timing[] {
  const json = join(BUILD_DIR, 'startup.json')
  const times = runs.map(() => [] as number[])
  const cpu = runs.map(() => 0)
  for (let done = 0; done < RUNS; done += RUNS_PER_ROUND) {
    const count = Math.min(RUNS_PER_ROUND, RUNS - done)
    // hyperfine's --ignore-failure covers every command: the others were checked to exit 0 first (checkExits).
    const args = ['-N', '--warmup', String(done === 0 ? WARMUP : 1), '--runs', String(count), '--export-json', json, '--style', 'none', ...(runs.some((r) => r.anyExit) ? ['-i'] : [])]
    for (const r of runs) args.push('-n', r.name, [process.execPath, ...r.argv].map(quote).join(' '))
    const result = spawnSync('hyperfine', args, {stdio: ['ignore', 'ignore', 'inherit']})
    if (result.status !== 0) throw new Error(`hyperfine exited with ${result.status}`)
    const results = (JSON.parse(readFileSync(json, 'utf8')) as {results: {times: number[]; user: number; system: number}[]}).results
    results.forEach((r, i) => {
      times[i]!.push(...r.times.map((t) => t * 1000))
      cpu[i]! += (r.user + r.system) * 1000 * count
    })
  }
  return times.map((t, i) => ({ms: median(t), cpuMs: cpu[i]! / RUNS}))
}

/** Fails unless every run that must exit 0 does. */
function checkExits(runs: Run[]): void {
  for (const r of runs) {
    const result = spawnSync(process.execPath, r.argv, {encoding: 'utf8'})
    if (result.status !== 0 && !r.anyExit) throw new Error(`${r.name} exited with ${result.status}:\n${result.stderr}`)
  }
}

/** Median wall time of each run, spawning each one WARMUP + RUNS times, interleaved. */
function withSpawnLoop(runs: Run[]): Timing[] {
  const times = runs.map(() => [] as number[])
  for (let round = 0; round < WARMUP + RUNS; round++) {
    runs.forEach((r, i) => {
      const started = performance.now()
      const result = spawnSync(process.execPath, r.argv, {stdio: 'ignore'})
      const ms = performance.now() - started
      if (result.status !== 0 && !r.anyExit) throw new Error(`${r.name} exited with ${result.status}`)
      if (round >= WARMUP) times[i]!.push(ms)
    })
  }
  return times.map((t) => ({ms: median(t)}))
}

/** Clones this repository at `ref` into BUILD_DIR and builds it with `npm run build`; returns its CLI's entry. */
function buildBefore(ref: string): string {
  const dir = join(BUILD_DIR, `before-${ref.replace(/[^\w.-]/g, '_')}`)
  rmSync(dir, {recursive: true, force: true})
  for (const command of [
    ['git', 'clone', '--quiet', '--no-checkout', ROOT, dir],
    ['git', '-C', dir, 'checkout', '--quiet', ref],
  ]) {
    const result = spawnSync(command[0]!, command.slice(1), {encoding: 'utf8'})
    if (result.status !== 0) throw new Error(`${command.join(' ')} failed:\n${result.stderr}`)
  }
  // This checkout's packages: the commits compared differ in code, not in what npm installs for them.
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  const result = spawnSync('npm', ['run', '--silent', 'build'], {cwd: dir, encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`building ${ref} failed:\n${result.stdout}${result.stderr}`)
  return cliEntry(dir)
}

/** The file package.json names as the `smartnat` command: what an installed package runs (bin/run.js before it was CommonJS). */
function cliEntry(root: string): string {
  const {bin} = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {bin: {smartnat: string}}
  return join(root, bin.smartnat)
}

const ratio = (timing: Timing, floor: Timing) => `${(timing.ms / floor.ms).toFixed(2)}x`
const cpuRatio = (timing: Timing, floor: Timing) => (timing.cpuMs === undefined ? 'n/a' : `${(timing.cpuMs / floor.cpuMs!).toFixed(2)}x`)

async function main(): Promise<void> {
  buildCli()
  const before = options.before === undefined ? undefined : buildBefore(options.before)
  const emptyDir = mkdtempSync(join(BUILD_DIR, 'startup-empty-'))
  const unavailable = kernelUnavailableReason()
  if (unavailable) console.log(`status on an empty host skipped: ${unavailable}`)
  const namespace = unavailable ? undefined : await createNamespace('startup')
  try {
    const all = cases(namespace, emptyDir)
    const after = cliEntry(ROOT)
    const runs: Run[] = [{name: 'node -e 0', argv: ['-e', '0']}]
    for (const c of all) {
      if (before) runs.push({name: `${c.name} (before)`, argv: c.argv(before), anyExit: c.anyExit})
      runs.push({name: c.name, argv: c.argv(after), anyExit: c.anyExit})
    }
    const hyperfine = spawnSync('hyperfine', ['--version']).status === 0
    console.log(hyperfine ? `hyperfine, ${RUNS} runs each in rounds of ${RUNS_PER_ROUND} runs of every command (warm-up ${WARMUP} in the first, 1 in the others)` : `hyperfine not found: a loop of spawns, ${WARMUP} warm-up + ${RUNS} runs each`)
    checkExits(runs)
    const timings = hyperfine ? withHyperfine(runs) : withSpawnLoop(runs)
    const byName = new Map(runs.map((r, i) => [r.name, timings[i]!]))
    const floor = timings[0]!
    const header = ['command', ...(before ? ['before ms', 'before ratio'] : []), 'median ms', 'ratio to node -e 0', 'CPU ratio', 'target']
    const rows = [
      ['node -e 0', ...(before ? [floor.ms, '1.00x'] : []), floor.ms, '1.00x', '1.00x', ''],
      ...all.map((c) => {
        const was = byName.get(`${c.name} (before)`)
        const now = byName.get(c.name)!
        return [c.name, ...(before ? [was!.ms, ratio(was!, floor)] : []), now.ms, ratio(now, floor), cpuRatio(now, floor), `<= ${c.limit}x`]
      }),
    ]
    if (before) console.log(`before: ${options.before} (built in ${join(BUILD_DIR, 'before-*')}); after: this checkout`)
    printTable(header, rows)
    const targets: Target[] = all.flatMap((c) => (c.limit === undefined ? [] : [{name: c.name, value: byName.get(c.name)!.ms / floor.ms, limit: c.limit, unit: 'x'}]))
    printTargets(targets)
  } finally {
    await namespace?.destroy()
    rmSync(emptyDir, {recursive: true, force: true})
  }
}

// Start-up targets are reported, not enforced: other work on the machine moves these figures by tens of percent.
await main()
