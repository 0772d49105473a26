/**
 * CLI start-up: the built CLI (bin/run.js, as installed) against `node -e 0` measured in the same
 * run, as a ratio, for --version, a command's --help, a dry-run sync of one Mapping from a file and,
 * as root, status on an empty host (a throwaway network namespace). Uses hyperfine when installed
 * (--warmup 2 --runs RUNS), else its own loop of spawns, and says which.
 *
 *   npm run bench:startup [-- RUNS]
 */
import {spawnSync} from 'node:child_process'
import {mkdirSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {BUILD_DIR, buildCli} from './cli.js'
import {createNamespace, kernelUnavailableReason, type BenchNamespace} from './netns.js'
import {median, printTable, printTargets, type Target} from './report.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const RUNS = Number(process.argv[2] ?? 10)
const WARMUP = 2

interface Case {
  name: string
  argv: string[]
  /** Most a start may take, as a multiple of `node -e 0`. */
  limit?: number
  /** status exits non-zero on a host with problems or drift: that is its answer, not a failure. */
  anyExit?: boolean
}

function cases(namespace: BenchNamespace | undefined, emptyDir: string): Case[] {
  const cli = [process.execPath, join(ROOT, 'bin', 'run.js')]
  return [
    {name: 'node -e 0', argv: [process.execPath, '-e', '0']},
    {name: 'smartnat --version', argv: [...cli, '--version'], limit: 1.3},
    {name: 'smartnat sync --help', argv: [...cli, 'sync', '--help'], limit: 1.3},
    {name: 'smartnat explain --help', argv: [...cli, 'explain', '--help'], limit: 1.3},
    {
      name: 'smartnat sync --dry-run (1 Mapping, file)',
      argv: [...cli, 'sync', '--dry-run', '--from-file', join(ROOT, 'examples', 'echo-service.yaml'), '--assume-addresses', '198.18.0.10'],
      limit: 1.6,
    },
    ...(namespace
      ? [{name: 'smartnat status (empty host)', argv: [...cli, 'status', '--from-file', emptyDir, '--netns', namespace.name], limit: 2, anyExit: true}]
      : []),
  ]
}

const quote = (arg: string) => (/^[\w./:,=@-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", "'\\''")}'`)

/** Median wall time of each case in ms, by hyperfine (all cases in one run). */
function withHyperfine(all: Case[]): number[] {
  const json = join(BUILD_DIR, 'startup.json')
  const args = ['-N', '--warmup', String(WARMUP), '--runs', String(RUNS), '--export-json', json, '--style', 'basic']
  for (const c of all) args.push(...(c.anyExit ? ['-i'] : []), '-n', c.name, c.argv.map(quote).join(' '))
  const result = spawnSync('hyperfine', args, {stdio: ['ignore', 'ignore', 'inherit']})
  if (result.status !== 0) throw new Error(`hyperfine exited with ${result.status}`)
  const results = (JSON.parse(readFileSync(json, 'utf8')) as {results: {median: number}[]}).results
  return results.map((r) => r.median * 1000)
}

/** Median wall time of each case in ms, spawning each one WARMUP + RUNS times, interleaved. */
function withSpawnLoop(all: Case[]): number[] {
  const times = all.map(() => [] as number[])
  for (let round = 0; round < WARMUP + RUNS; round++) {
    all.forEach((c, i) => {
      const started = performance.now()
      const result = spawnSync(c.argv[0]!, c.argv.slice(1), {stdio: 'ignore'})
      const ms = performance.now() - started
      if (result.status !== 0 && !c.anyExit) throw new Error(`${c.name} exited with ${result.status}`)
      if (round >= WARMUP) times[i]!.push(ms)
    })
  }
  return times.map((t) => median(t))
}

async function main(): Promise<boolean> {
  buildCli()
  mkdirSync(BUILD_DIR, {recursive: true})
  const emptyDir = mkdtempSync(join(BUILD_DIR, 'startup-empty-'))
  const unavailable = kernelUnavailableReason()
  if (unavailable) console.log(`status on an empty host skipped: ${unavailable}`)
  const namespace = unavailable ? undefined : await createNamespace('startup')
  try {
    const all = cases(namespace, emptyDir)
    const hyperfine = spawnSync('hyperfine', ['--version']).status === 0
    console.log(hyperfine ? `hyperfine, --warmup ${WARMUP} --runs ${RUNS}` : `hyperfine not found: a loop of spawns, ${WARMUP} warm-up + ${RUNS} runs each`)
    const medians = hyperfine ? withHyperfine(all) : withSpawnLoop(all)
    const floor = medians[0]!
    printTable(
      ['command', 'median ms', 'ratio to node -e 0'],
      all.map((c, i) => [c.name, medians[i]!, `${(medians[i]! / floor).toFixed(2)}x`]),
    )
    const targets: Target[] = all.flatMap((c, i) => (c.limit === undefined ? [] : [{name: c.name, value: medians[i]! / floor, limit: c.limit, unit: 'x'}]))
    return printTargets(targets)
  } finally {
    await namespace?.destroy()
    rmSync(emptyDir, {recursive: true, force: true})
  }
}

process.exitCode = (await main()) ? 0 : 1
