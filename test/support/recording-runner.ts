/** A fake of the one command runner for unit tests: records every call and answers from a handler. */
import {CommandError, type RunOptions, type RunResult, type Runner} from '../../src/lib/host/runner.js'

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
