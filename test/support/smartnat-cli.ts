/** Runs the real `smartnat` CLI from source (bin/dev.js) as a child process, with a hard deadline. */
import {spawn, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'

const DEV_ENTRY = fileURLToPath(new URL('../../bin/dev.js', import.meta.url))

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

/** Starts `smartnat ARGS...`; stdin is not a terminal, so nothing can wait on a prompt. */
export function startSmartnat(args: string[], options: {timeoutMs?: number} = {}): RunningCli {
  const child = spawn(process.execPath, [DEV_ENTRY, ...args], {stdio: ['ignore', 'pipe', 'pipe'], env: {...process.env, NO_COLOR: '1'}})
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
export function smartnat(args: string[], options: {timeoutMs?: number} = {}): Promise<CliResult> {
  return startSmartnat(args, options).done
}

/** Runs `smartnat ARGS... --json`, insists on exit 0 and returns the parsed result. */
export async function smartnatJson<T>(args: string[], options: {timeoutMs?: number} = {}): Promise<T> {
  const result = await smartnat([...args, '--json'], options)
  if (result.code !== 0) throw new Error(`smartnat ${args.join(' ')} exited with ${result.code}:\n${result.stderr}${result.stdout}`)
  return JSON.parse(result.stdout) as T
}
