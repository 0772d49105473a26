/** The one way smartnat runs a process: a narrow interface, node:child_process underneath (tests use a recording fake, test/support/recording-runner.ts). */
import type {ChildProcessWithoutNullStreams} from 'node:child_process'
import {existsSync} from 'node:fs'
import {ByteLines} from '../net/byte-lines.js'
import {CommandError} from './command-error.js'
import {startConversation, type Conversation} from './conversation.js'
import {childProcess, startProcess} from './process.js'
import {readAhead} from './read-ahead.js'

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
  /**
   * The command line runs this same read at its every run: it may have been started already at the
   * process's start, and is kept to be started so the next time (read-ahead.ts). No input or onStdout.
   */
  readAhead?: boolean
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

const PDEATHSIG_WRAPPER = ['/usr/bin/setpriv', '/bin/setpriv'].find((path) => existsSync(path))

/** Runs real processes; inside a network namespace when one is given. */
export class ExecRunner implements Runner {
  constructor(private readonly options: ExecRunnerOptions) {}

  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const [file, argv] = this.command(command, args)
    const timing = {timeoutMs: this.options.timeoutSeconds * 1000, killAfterMs: this.options.killAfterMs ?? KILL_AFTER_MS}
    const start = () => startProcess(file, argv, {input: options.input ?? '', ...timing, ...(options.onStdout ? {onStdout: options.onStdout} : {})})
    const ended = await (options.readAhead ? readAhead({file, args: argv, ...timing}, start) : start()).ended
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
