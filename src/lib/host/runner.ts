/** The one way smartnat runs a process: a narrow interface, execa underneath, a recording fake for tests. */
import {execa} from 'execa'

export interface RunOptions {
  /** Written to the process's stdin (restore payloads). */
  input?: string
  /** Exit codes that are not an error (e.g. 1 for "nothing matched"). */
  okExitCodes?: number[]
}

export interface RunResult {
  stdout: string
  stderr: string
  exitCode: number
}

export interface Runner {
  run(command: string, args: string[], options?: RunOptions): Promise<RunResult>
}

/** A command that failed, with everything needed to say why. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
    options?: {cause?: unknown; timedOut?: boolean},
  ) {
    const what = [command, ...args].join(' ')
    const why = options?.timedOut
      ? 'timed out'
      : exitCode === undefined
        ? 'could not be started'
        : `exited with ${exitCode}`
    super(`${what} ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, {cause: options?.cause})
    this.name = 'CommandError'
  }
}

export interface ExecRunnerOptions {
  /** Per-command timeout in seconds (SNCTRLR_IPTABLES_TIMEOUT_SEC). */
  timeoutSeconds: number
  /** Run every command inside this network namespace (`ip netns exec NAME ...`). */
  netns?: string
}

/** Runs real processes; inside a network namespace when one is given. */
export class ExecRunner implements Runner {
  constructor(private readonly options: ExecRunnerOptions) {}

  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const [file, argv] = this.options.netns
      ? ['ip', ['netns', 'exec', this.options.netns, command, ...args]]
      : [command, args]
    const result = await execa(file, argv, {
      input: options.input ?? '',
      reject: false,
      timeout: this.options.timeoutSeconds * 1000,
      stripFinalNewline: false,
      env: {LC_ALL: 'C'},
    })
    const exitCode = result.exitCode
    if (result.timedOut) throw new CommandError(command, args, exitCode, result.stderr ?? '', {timedOut: true})
    if (exitCode === undefined) throw new CommandError(command, args, undefined, result.stderr ?? '', {cause: result.cause})
    if (exitCode !== 0 && !(options.okExitCodes ?? []).includes(exitCode)) {
      throw new CommandError(command, args, exitCode, result.stderr ?? '')
    }
    return {stdout: result.stdout ?? '', stderr: result.stderr ?? '', exitCode}
  }
}

export interface RecordedCall {
  command: string
  args: string[]
  input?: string
}

/** A fake runner for unit tests: records calls and answers from a handler. */
export class RecordingRunner implements Runner {
  readonly calls: RecordedCall[] = []

  constructor(private readonly answer: (call: RecordedCall) => Partial<RunResult> | Error = () => ({})) {}

  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const call: RecordedCall = {command, args, ...(options.input === undefined ? {} : {input: options.input})}
    this.calls.push(call)
    const answer = this.answer(call)
    if (answer instanceof Error) throw answer
    const result = {stdout: '', stderr: '', exitCode: 0, ...answer}
    if (result.exitCode !== 0 && !(options.okExitCodes ?? []).includes(result.exitCode)) {
      throw new CommandError(command, args, result.exitCode, result.stderr)
    }
    return result
  }
}
