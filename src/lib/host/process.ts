/**
 * One process started and its output collected, for ExecRunner (runner.ts) and for a read started
 * ahead at a command's start (read-ahead.ts), which the CLI's entry bundles on its own: this module
 * imports nothing of smartnat's.
 */
import type {ChildProcessWithoutNullStreams} from 'node:child_process'
import type {Socket} from 'node:net'

/** node:child_process, loaded at the first process started: it loads node:net with it (about 2 ms), and a dry-run sync starts none. */
export function childProcess(): typeof import('node:child_process') {
  return process.getBuiltinModule('node:child_process')
}

/** How long the output pipes may stay open after the process exited (a conversation's stderr too, conversation.ts). */
export const PIPES_AFTER_EXIT_MS = 1000

/** How a process ended: its output, and its exit code or the signal or error that ended it. */
export interface Ended {
  stdout: string
  stderr: string
  exitCode: number | null
  signal: NodeJS.Signals | null
  timedOut: boolean
  startError?: Error
  /** What `onStdout` threw; later output was not handed to it. */
  outputError?: unknown
}

export interface ProcessOptions {
  /** Written to the process's stdin, which is then closed. */
  input: string
  timeoutMs: number
  /** How long a timed-out process gets to exit after SIGTERM before SIGKILL. */
  killAfterMs: number
  /** Hands stdout over as it arrives, as bytes, instead of collecting it (RunOptions.onStdout). */
  onStdout?: (chunk: Buffer) => void
}

/** A process started by startProcess. */
export interface StartedProcess {
  /** Settles once the process ended and its output is all read; never rejects: every ending is data. */
  readonly ended: Promise<Ended>
  /** Lets Node.js exit without waiting for the process, its pipes or its timeout (a read that may never be asked for). */
  letGo(): void
  /** Undoes letGo: Node.js waits for the process again. */
  hold(): void
  /** Ends the process at once (SIGKILL). */
  kill(): void
}

/**
 * Starts `file` with `input` on its stdin and collects its output. A process that outlives
 * `timeoutMs` gets SIGTERM, then SIGKILL `killAfterMs` later.
 */
export function startProcess(file: string, args: string[], options: ProcessOptions): StartedProcess {
  // Let go of once the process ended, as its output is: the callback holds what its reader made of
  // the output (a parsed state). Only these variables are in reach of the listeners, not the
  // parameters, and the input is let go of once handed to the pipe (a restore payload of megabytes).
  let handOver = options.onStdout
  let stdin: string | undefined = options.input
  const {timeoutMs, killAfterMs} = options
  // The environment is inherited; LC_ALL=C keeps the tools' messages and number formats parseable.
  const child: ChildProcessWithoutNullStreams = childProcess().spawn(file, args, {env: {...process.env, LC_ALL: 'C'}, stdio: ['pipe', 'pipe', 'pipe']})
  let timeoutTimer: NodeJS.Timeout | undefined
  let killTimer: NodeJS.Timeout | undefined
  const ended = new Promise<Ended>((resolve) => {
    // The child's listeners and the timers below keep what they capture alive until its pipes are
    // destroyed, up to PIPES_AFTER_EXIT_MS after it exited: once it ended they must hold neither its
    // output nor the promise resolved with it (a 15 MB `nft -j` listing, else alive through its parse).
    let settle: ((ended: Ended) => void) | undefined = resolve
    // Decoded chunk by chunk: the bytes are dropped as they arrive instead of being held, copied
    // into one buffer and then decoded (a 15 MB `nft -j` listing would be held three times).
    const stdout: string[] = []
    const stderr: string[] = []
    if (!handOver) child.stdout.setEncoding('utf8')
    child.stderr.setEncoding('utf8')
    let outputError: {thrown: unknown} | undefined
    let timedOut = false
    timeoutTimer = setTimeout(() => {
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
  // The pipes are sockets, which Node.js can let go of as it can of the process and the timers.
  const handles = (): ({ref(): unknown; unref(): unknown} | undefined)[] => [child, child.stdout as unknown as Socket, child.stderr as unknown as Socket, timeoutTimer, killTimer]
  return {
    ended,
    letGo: () => handles().forEach((handle) => handle?.unref()),
    hold: () => handles().forEach((handle) => handle?.ref()),
    kill: () => void child.kill('SIGKILL'),
  }
}
