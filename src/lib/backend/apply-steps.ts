/** What both backends' apply do alike: read the kernel, build the payloads, run each one and name the line it failed on, each as a step. */
import {CommandError, type Runner} from '../host/runner.js'
import {ApplyError} from './result.js'

/** Where a tool said a payload failed: the line it reported, and the line really at fault. */
export interface FailedLine {
  reported: number
  line: number
}

/** The failing payload line with the lines around it, numbered as the tool counts them. */
export function payloadContext(payload: string, line: number, around = 3): string {
  const lines = payload.split('\n')
  const first = Math.max(1, line - around)
  const last = Math.min(lines.length, line + 1)
  const shown: string[] = []
  for (let n = first; n <= last; n++) {
    if (n === lines.length && lines[n - 1] === '') break
    shown.push(`${n === line ? '>' : ' '} ${String(n).padStart(4)}: ${lines[n - 1]}`)
  }
  return shown.join('\n')
}

/** What a failed command said on stderr; the error's message for any other failure. */
export function stderrOf(error: unknown): string {
  return error instanceof CommandError ? error.stderr.trim() : error instanceof Error ? error.message : String(error)
}

/** Runs one payload; on failure throws an ApplyError naming the step and, when `locate` finds it, the failing line with its neighbours. */
export async function runPayload(
  runner: Runner,
  step: string,
  [command, args]: readonly [string, string[]],
  payload: string,
  locate?: (stderr: string, payload: string) => FailedLine | undefined,
): Promise<void> {
  try {
    await runner.run(command, args, {input: payload})
  } catch (error) {
    const stderr = stderrOf(error)
    const failed = locate?.(stderr, payload)
    const where =
      failed === undefined
        ? `${command} failed`
        : `${command} failed at payload line ${failed.line}${failed.line === failed.reported ? '' : ` (reported as line ${failed.reported})`}: ` +
          `${JSON.stringify(payload.split('\n')[failed.line - 1] ?? '')}\n${payloadContext(payload, failed.line)}`
    throw new ApplyError(step, `${where}\n${stderr}`, {cause: error})
  }
}

/** The kernel's state for an apply: the read the caller started, else a new one; a failure fails the apply's `read` step. */
export async function readActual<State>(started: Promise<State> | undefined, read: () => Promise<State>): Promise<State> {
  try {
    return await (started ?? read())
  } catch (error) {
    throw stepError('read', error)
  }
}

/** An apply's payloads, all built before its first write so that a malformed desired state writes nothing; a failure fails its `build payloads` step. */
export function buildPayloads<Payloads>(build: () => Payloads): Payloads {
  try {
    return build()
  } catch (error) {
    throw stepError('build payloads', error)
  }
}

function stepError(step: string, error: unknown): ApplyError {
  return new ApplyError(step, error instanceof Error ? error.message : String(error), {cause: error})
}
