/**
 * The installed CLI's way of running, for the benchmarks that measure it: built into dist/ as
 * `npm run build` does, started as `bin/run.cjs`, its peak RSS reported by bench/rss-hook.cjs; or
 * the single executable SMARTNAT_BENCH_EXECUTABLE names.
 */
import {spawn, spawnSync} from 'node:child_process'
import {mkdirSync, readFileSync} from 'node:fs'
import {createServer} from 'node:net'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
export const BUILD_DIR = fileURLToPath(new URL('../tmp/bench-build/', import.meta.url))
const RSS_HOOK = fileURLToPath(new URL('rss-hook.cjs', import.meta.url))

/** Builds the CLI as `npm run build` does (bin/run.cjs runs the bundle in dist/, as the installed CLI does), and makes BUILD_DIR. */
export function buildCli(): void {
  // Benchmarks write kubeconfigs and lock files here before any CLI run would create it.
  mkdirSync(BUILD_DIR, {recursive: true})
  const result = spawnSync('npm', ['run', '--silent', 'build'], {cwd: ROOT, encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`building the CLI failed:\n${result.stdout}${result.stderr}`)
}

/** A TCP port on 127.0.0.1 that nothing listens on now: benchmarks that run side by side must not read each other's daemon. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as {port: number}
  await new Promise((resolve) => server.close(resolve))
  return port
}

export interface CliRun {
  /** Until exit, or until `ready` said yes when it was given. */
  ms: number
  rssMb: number
}

export interface CliOptions {
  /** For a daemon: polled every 50 ms from the start; once it answers true, `ms` is taken and `whileRunning` runs. */
  ready?: () => Promise<boolean>
  /** Runs once the daemon is ready; the daemon then gets SIGTERM and must exit 0. */
  whileRunning?: () => Promise<void>
  /** Added to the environment the CLI inherits. */
  env?: Record<string, string>
  /** Gives up (killing the process) after this long; 300 s unless given. */
  timeoutMs?: number
}

/**
 * The single executable to run instead of the package's CLI (`npm run build:sea` makes one in
 * dist-sea/), from SMARTNAT_BENCH_EXECUTABLE; its peak RSS is read from /proc, as no hook can be
 * loaded into it.
 */
export const EXECUTABLE = process.env.SMARTNAT_BENCH_EXECUTABLE

/** The process's peak RSS so far in kB (VmHWM), or undefined once it is gone. */
function peakKb(pid: number): number | undefined {
  try {
    const match = /^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match ? Number(match[1]) : undefined
  } catch {
    return undefined
  }
}

/** Runs `smartnat ARGS` (compiled, or EXECUTABLE); fails unless it exits 0. */
export async function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  mkdirSync(BUILD_DIR, {recursive: true})
  const rssFile = join(BUILD_DIR, `rss-${process.pid}`)
  const started = performance.now()
  const [command, argv] = EXECUTABLE ? [EXECUTABLE, args] : [process.execPath, ['--require', RSS_HOOK, join(ROOT, 'bin', 'run.cjs'), ...args]]
  const child = spawn(command, argv, {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: {...process.env, ...options.env, SMARTNAT_BENCH_RSS_FILE: rssFile},
  })
  // The executable's peak, read every 20 ms until it exits (what it reaches in its last 20 ms is not seen), and before it is stopped.
  let peak = 0
  const watchPeak = () => (peak = Math.max(peak, (child.pid !== undefined && peakKb(child.pid)) || 0))
  const sampler = EXECUTABLE ? setInterval(watchPeak, 20) : undefined
  let stderr = ''
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  const deadline = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 300_000)
  try {
    let ms: number | undefined
    if (options.ready) {
      let done = false
      void exited.then(() => (done = true))
      while (!done && !(await options.ready())) await new Promise((resolve) => setTimeout(resolve, 50))
      if (done) throw new Error(`smartnat ${args[0]} exited before it was ready:\n${stderr}`)
      ms = performance.now() - started
      await options.whileRunning?.()
      if (EXECUTABLE) watchPeak()
      child.kill('SIGTERM')
    }
    const code = await exited
    ms ??= performance.now() - started
    if (code !== 0) throw new Error(`smartnat ${args[0]} exited with ${code}:\n${stderr}`)
    return {ms, rssMb: (EXECUTABLE ? peak : Number(readFileSync(rssFile, 'utf8'))) / 1024}
  } finally {
    clearInterval(sampler)
    clearTimeout(deadline)
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  }
}
