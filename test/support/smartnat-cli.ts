/** Runs the real `smartnat` CLI from source (bin/dev.js, or SMARTNAT_CLI) as a child process, with a hard deadline. */
import {spawn, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'

const DEV_ENTRY = fileURLToPath(new URL('../../bin/dev.js', import.meta.url))
/** What `smartnat` is: the sources through bin/dev.js, or with SMARTNAT_CLI set the executable it names (the single executable, say). */
const CLI_COMMAND = process.env.SMARTNAT_CLI ? [process.env.SMARTNAT_CLI] : [process.execPath, DEV_ENTRY]

export interface CliResult {
  /** null when the process was killed at the deadline. */
  code: number | null
  stdout: string
  stderr: string
}

export interface RunningCli {
  readonly child: ChildProcess
  /** Settles when the process has exited. */
  readonly done: Promise<CliResult>
}

export interface CliOptions {
  /** Killed with SIGKILL after this long (default 30000). */
  timeoutMs?: number
  /** Variables set on top of the test's own environment (e.g. a PATH with a stub first). */
  env?: Record<string, string>
  /** A command that runs node in turn, e.g. `unshare --pid --fork --kill-child` for a PID namespace of its own. */
  wrapper?: string[]
}

/** Starts `smartnat ARGS...`; stdin is not a terminal, so nothing can wait on a prompt. */
export function startSmartnat(args: string[], options: CliOptions = {}): RunningCli {
  const [file, ...rest] = [...(options.wrapper ?? []), ...CLI_COMMAND, ...args]
  const child = spawn(file!, rest, {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1', ...options.env}})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000)
  const done = new Promise<CliResult>((resolve) =>
    child.once('close', (code) => {
      clearTimeout(timer)
      resolve({code, stdout, stderr})
    }),
  )
  return {child, done}
}

/** Settles once the process has written `text` to stderr, or has exited (then check its output). */
export function stderrSays(cli: RunningCli, text: string): Promise<void> {
  return new Promise((resolve) => {
    let stderr = ''
    cli.child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      if (stderr.includes(text)) resolve()
    })
    void cli.done.then(() => resolve())
  })
}

/** Runs `smartnat ARGS...` to completion. */
export function smartnat(args: string[], options: CliOptions = {}): Promise<CliResult> {
  return startSmartnat(args, options).done
}

/** Runs `smartnat ARGS... --json`, insists on exit 0 and returns the parsed result. */
export async function smartnatJson<T>(args: string[], options: CliOptions = {}): Promise<T> {
  const result = await smartnat([...args, '--json'], options)
  if (result.code !== 0) throw new Error(`smartnat ${args.join(' ')} exited with ${result.code}:\n${result.stderr}${result.stdout}`)
  return JSON.parse(result.stdout) as T
}

/** Ends a CLI that may still run (SIGKILL), however a test ended, and waits for it to exit. */
export async function killSmartnat(cli: RunningCli | undefined): Promise<void> {
  if (!cli) return
  if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL')
  await cli.done
}
