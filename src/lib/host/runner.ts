/** The one way smartnat runs a process: a narrow interface, node:child_process underneath (tests use a recording fake, test/support/recording-runner.ts). */
import type {ChildProcessWithoutNullStreams} from 'node:child_process'
import {existsSync} from 'node:fs'
import {ByteLines} from '../net/byte-lines.js'
import {CommandError} from './command-error.js'
import {startConversation, type Conversation} from './conversation.js'

export {CommandError} from './command-error.js'

export interface RunOptions {
  /** Written to the process's stdin (restore payloads). */
  input?: string
  /** Exit codes that are not an error (e.g. 1 for "nothing matched"). */
  okExitCodes?: number[]
  /**
   * Hands stdout over as it arrives, as bytes, instead of collecting it: a reader takes a long
   * listing apart as it comes and never holds all of it. The result's stdout is then empty; a runner
   * that cannot hand it over (fakes, one shell) leaves this out, and `streamOutput` gives the
   * collected text to the same callback. A throw from it fails the run with that error.
   */
  onStdout?: (chunk: Buffer) => void
}

export interface RunResult {
  stdout: string
  stderr: string
  exitCode: number
}

export interface Runner {
  run(command: string, args: string[], options?: RunOptions): Promise<RunResult>
  /** Starts a process that runs until stopped, handing its output over as it comes; absent where processes cannot be followed (fakes). */
  follow?(command: string, args: string[], onOutput: (chunk: string) => void): Follower
  /** Starts a process that answers question after question on its stdin, on its stderr; absent in fakes that have none. */
  converse?(command: string, args: string[], options?: {env?: Record<string, string>}): Conversation
}

/** A process that runs until stopped (`ip monitor`). */
export interface Follower {
  /** Settles when the process has ended, for whatever reason; never rejects. */
  readonly ended: Promise<void>
  /** Ends the process (SIGTERM, then SIGKILL) and waits for it. */
  stop(): Promise<void>
}

/**
 * Runs a command with its stdout handed to `onChunk` as it comes (bytes), or all at once when the
 * runner collected it; the result's stdout is always empty, its exit code and stderr as `run` gives them.
 */
export async function streamOutput(runner: Runner, command: string, args: string[], onChunk: (chunk: Buffer) => void, options: Omit<RunOptions, 'onStdout'> = {}): Promise<RunResult> {
  const result = await runner.run(command, args, {...options, onStdout: onChunk})
  if (result.stdout !== '') onChunk(Buffer.from(result.stdout))
  return {...result, stdout: ''}
}

/** The stdout of a command that reads kernel state; a failure names the command. */
export async function kernelOutput(runner: Runner, [command, args]: readonly [string, readonly string[]]): Promise<string> {
  try {
    return (await runner.run(command, [...args])).stdout
  } catch (error) {
    throw kernelReadError(command, args, error)
  }
}

/**
 * The stdout of a command that reads kernel state, handed to `onLine` line by line as it arrives
 * (`ByteLines`), so that a long listing is never held whole; a failure names the command as
 * `kernelOutput`'s does, whether the command failed or `onLine` threw.
 */
export async function kernelLines(runner: Runner, [command, args]: readonly [string, readonly string[]], onLine: (line: string) => void): Promise<void> {
  const lines = new ByteLines(onLine)
  try {
    await streamOutput(runner, command, [...args], (chunk) => lines.push(chunk))
    lines.end()
  } catch (error) {
    throw kernelReadError(command, args, error)
  }
}

/** The error a failed read of kernel state fails with: it names the command, the failure its cause. */
export function kernelReadError(command: string, args: readonly string[], cause: unknown): Error {
  return new Error(`reading kernel state: ${[command, ...args].join(' ')} failed`, {cause})
}

export interface ExecRunnerOptions {
  /** Per-command timeout in seconds (SNCTRLR_IPTABLES_TIMEOUT_SEC). */
  timeoutSeconds: number
  /** Run every command inside this network namespace (`ip netns exec NAME ...`). */
  netns?: string
  /** How long a timed-out command gets to exit after SIGTERM before SIGKILL; 5000 unless given. */
  killAfterMs?: number
}

export const KILL_AFTER_MS = 5000

/** node:child_process, loaded at the first process started: it loads node:net with it (about 2 ms), and a dry-run sync starts none. */
function childProcess(): typeof import('node:child_process') {
  return process.getBuiltinModule('node:child_process')
}
const PDEATHSIG_WRAPPER = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path))
/** How long the output pipes may stay open after the process exited. */
const PIPES_AFTER_EXIT_MS = 1000

/** How a process ended: its output, and its exit code or the signal or error that ended it. */
interface Ended {
  stdout: string
  stderr: string
  exitCode: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  startError?: Error
  /** What `onStdout` threw; later output was not handed to it. */
  outputError?: unknown
}

/**
 * Runs `file` with `input` on its stdin and collects its output. A process that outlives
 * `timeoutMs` gets SIGTERM, then SIGKILL `killAfterMs` later. Never rejects: every ending is data.
 */
function runProcess(file: string, args: string[], input: string, timeoutMs: number, killAfterMs: number, onStdout?: (chunk: Buffer) => void): Promise<Ended> {
  // Let go of once the process ended, as its output is: the callback holds what its reader made of
  // the output (a parsed state). Only these variables are in reach of the listeners, not the
  // parameters, and the input is let go of once handed to the pipe (a restore payload of megabytes).
  let handOver = onStdout
  let stdin: string | undefined = input
  return new Promise((resolve) => {
    // The child's listeners and the timers below keep what they capture alive until its pipes are
    // destroyed, up to PIPES_AFTER_EXIT_MS after it exited: once it ended they must hold neither its
    // output nor the promise resolved with it (a 15 MB `nft -j` listing, else alive through its parse).
    let settle: ((ended: Ended) => void) | undefined = resolve
    // The environment is inherited; LC_ALL=C keeps the tools' messages and number formats parseable.
    const child = childProcess().spawn(file, args, {env: {...process.env, LC_ALL: 'C'}, stdio: ['pipe', 'pipe', 'pipe']})
    // Decoded chunk by chunk: the bytes are dropped as they arrive instead of being held, copied
    // into one buffer and then decoded (a 15 MB `nft -j` listing would be held three times).
    const stdout: string[] = []
    const stderr: string[] = []
    if (!handOver) child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    let outputError: {thrown: unknown} | undefined
    let timedOut = false
    let killTimer: NodeJS.Timeout | undefined
    const timeoutTimer = setTimeout(() => {
      timedOut = true
      child.kill('SIGTERM')
      killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
    }, timeoutMs)
    const end = (ended: Omit<Ended, 'stdout' | 'stderr' | 'timedOut'>) => {
      clearTimeout(timeoutTimer)
      clearTimeout(killTimer)
      const output = {stdout: stdout.join(''), stderr: stderr.join('')}
      stdout.length = 0
      stderr.length = 0
      settle?.({...output, timedOut, ...ended, ...(outputError ? {outputError: outputError.thrown} : {})})
      settle = undefined
      handOver = undefined
    }
    if (handOver) {
      child.stdout.on('data', (chunk: Buffer) => {
        if (outputError || !handOver) return
        try {
          handOver(chunk)
        } catch (thrown) {
          outputError = {thrown}
        }
      })
    } else child.stdout.on('data', (chunk: string) => stdout.push(chunk))
    child.stderr.on('data', (chunk: string) => stderr.push(chunk))
    // A process that exits without reading all its input breaks the pipe; its exit code tells why.
    child.stdin.on('error', () => undefined)
    child.stdin.end(stdin)
    stdin = undefined
    // 'error' without a pid: the process never started. 'close' comes once its output is all read.
    child.once('error', (error) => {
      if (child.pid === undefined) end({exitCode: null, signal: null, startError: error})
    })
    child.once('close', (exitCode, signal) => {
      if (child.pid !== undefined) end({exitCode, signal})
    })
    // A process it left behind (`sh -c 'daemon &'`) may keep the pipes open long after it exited;
    // its output is what arrived by then, so that nothing waits past the process.
    child.once('exit', () => {
      setTimeout(() => {
        child.stdout.destroy()
        child.stderr.destroy()
      }, PIPES_AFTER_EXIT_MS).unref()
    })
  })
}

/** Runs real processes; inside a network namespace when one is given. */
export class ExecRunner implements Runner {
  constructor(private readonly options: ExecRunnerOptions) {}

  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const [file, argv] = this.command(command, args)
    const ended = await runProcess(file, argv, options.input ?? '', this.options.timeoutSeconds * 1000, this.options.killAfterMs ?? KILL_AFTER_MS, options.onStdout)
    const {stdout, stderr, exitCode, signal} = ended
    if ('outputError' in ended) throw ended.outputError
    if (ended.timedOut) throw new CommandError(command, args, exitCode ?? undefined, stderr, {timedOut: true})
    if (ended.startError) throw new CommandError(command, args, undefined, stderr, {cause: ended.startError})
    if (exitCode === null) throw new CommandError(command, args, undefined, stderr, {signal: signal ?? undefined})
    if (exitCode !== 0 && !(options.okExitCodes ?? []).includes(exitCode)) {
      throw new CommandError(command, args, exitCode, stderr)
    }
    return {stdout, stderr, exitCode}
  }

  follow(command: string, args: string[], onOutput: (chunk: string) => void): Follower {
    const [file, argv] = this.kept(command, args)
    const child = childProcess().spawn(file, argv, {env: {...process.env, LC_ALL: 'C'}, stdio: ['ignore', 'pipe', 'ignore']})
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', onOutput)
    const ended = new Promise<void>((resolve) => {
      child.once('error', () => resolve())
      child.once('exit', () => resolve())
    })
    const killAfterMs = this.options.killAfterMs ?? KILL_AFTER_MS
    return {
      ended,
      stop: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
        const killer = setTimeout(() => child.kill('SIGKILL'), killAfterMs)
        await ended
        clearTimeout(killer)
      },
    }
  }

  converse(command: string, args: string[], options: {env?: Record<string, string>} = {}): Conversation {
    const [file, argv] = this.kept(command, args)
    return startConversation({
      command,
      args,
      file,
      argv,
      env: {...process.env, LC_ALL: 'C', ...options.env},
      timeoutMs: this.options.timeoutSeconds * 1000,
      killAfterMs: this.options.killAfterMs ?? KILL_AFTER_MS,
    })
  }

  /** A process kept running beside the daemon (the shell of a LaunchingRunner), with its pipes. */
  keep(command: string, args: string[]): ChildProcessWithoutNullStreams {
    const [file, argv] = this.kept(command, args)
    return childProcess().spawn(file, argv, {env: {...process.env, LC_ALL: 'C'}, stdio: ['pipe', 'pipe', 'pipe']})
  }

  /**
   * How a process that runs as long as the daemon is started: a daemon killed outright (OOM) must
   * not leave it behind. With setpriv (util-linux) the kernel ends it with its parent; without, it
   * ends at its next write into the closed pipe, or at the end of its stdin.
   */
  private kept(command: string, args: string[]): [string, string[]] {
    return PDEATHSIG_WRAPPER ? this.command(PDEATHSIG_WRAPPER, ['--pdeathsig', 'KILL', command, ...args]) : this.command(command, args)
  }

  private command(command: string, args: string[]): [string, string[]] {
    return this.options.netns ? ['ip', ['netns', 'exec', this.options.netns, command, ...args]] : [command, args]
  }
}
