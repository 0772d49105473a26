/**
 * One `ipset -exist -` (ipset's interactive mode) a daemon keeps open for the set entries of its
 * changes. An `ipset restore` of a few lines costs a process start, 8-12 ms at 10,000 Mappings on a
 * small host (docs/benchmarks.md, "ipset entries through one kept ipset"), for a netlink message or
 * two; the kept process answers in well under a millisecond.
 */
import {CommandError} from '../../host/command-error.js'
import type {Conversation} from '../../host/conversation.js'
import type {RunOptions, RunResult, Runner} from '../../host/runner.js'
import {IPSET_RESTORE} from './apply.js'

/** `-exist` for every line, as `ipset restore -exist` has it; `-` reads commands from stdin. */
export const IPSET_INTERACTIVE: readonly [string, string[]] = ['ipset', ['-exist', '-']]

/**
 * Asked after every line: ipset rejects the type name in its own code, without the kernel, once the
 * line before it is done, and names it in its message. ipset writes errors, and only errors, on
 * stderr (its prompt goes to stdout): what came there before that answer is the line's error.
 */
export const PROBE = 'create smartnat_probe smartnat_answered'
const PROBE_ANSWER = /^[^\n]*typename 'smartnat_answered' is unknown\n/m
/** How long ipset gets to answer its first probe before `ipset restore` is used instead. */
const FIRST_ANSWER_MS = 5000
/** Payloads of more lines go through `ipset restore` (a set refilled, a first pass). */
export const MAX_SESSION_LINES = 256
/** Only lines that add or delete one entry of a set that exists go through the session. */
const ENTRY_LINE = /^(add|del) \S+ \S+$/

/** What ipset said for each line, up to the probe after it, and where the last probe's answer ends; undefined until that answer came. */
function scanAnswers(output: string, lines: number): {answers: string[]; end: number} | undefined {
  const answers: string[] = []
  let end = 0
  for (let i = 0; i < lines; i++) {
    const rest = output.slice(end)
    const match = PROBE_ANSWER.exec(rest)
    if (!match) return undefined
    answers.push(rest.slice(0, match.index))
    end += match.index + match[0].length
  }
  return {answers, end}
}

/** What ipset said for each line, up to the probe after it; undefined until the answer to the last probe came. */
export function lineAnswers(output: string, lines: number): string[] | undefined {
  return scanAnswers(output, lines)?.answers
}

/** Where the answer to the `lines`-th probe ends, once it came. */
function answered(lines: number): (output: string) => number | undefined {
  return (output) => scanAnswers(output, lines)?.end
}

/** The lines of `payload` when all of them are entries added or deleted, and there are few enough. */
export function entryLines(payload: string): string[] | undefined {
  const lines = payload.split('\n').filter((line) => line !== '')
  if (lines.length === 0 || lines.length > MAX_SESSION_LINES || !lines.every((line) => ENTRY_LINE.test(line))) return undefined
  return lines
}

/**
 * A runner that writes `ipset restore -exist` payloads of entries added and deleted through one kept
 * `ipset -exist -`, and runs everything else through `runner`. A line that fails fails the run as
 * `ipset restore` would, its error prefixed with `line N: ` (the payload line); unlike `ipset
 * restore`, the lines after it have run too, which the apply's rollback undoes with the rest.
 */
export class IpsetSession implements Runner {
  private conversation: Conversation | undefined
  private unusable = false
  private asking: Promise<unknown> = Promise.resolve()

  constructor(private readonly runner: Runner) {
    if (runner.follow) this.follow = runner.follow.bind(runner)
    if (runner.converse) this.converse = runner.converse.bind(runner)
  }

  follow?: Runner['follow']
  converse?: Runner['converse']

  run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const lines = command === IPSET_RESTORE[0] && args.join(' ') === IPSET_RESTORE[1].join(' ') && options.input !== undefined ? entryLines(options.input) : undefined
    if (!lines) return this.runner.run(command, args, options)
    // One question at a time: the answers of two would interleave.
    const run = this.asking.then(() => this.ask(lines, options))
    this.asking = run.catch(() => undefined)
    return run
  }

  /** Ends `ipset -`; the next payload starts it again. */
  close(): void {
    this.conversation?.close()
    this.conversation = undefined
  }

  private async ask(lines: string[], options: RunOptions): Promise<RunResult> {
    const conversation = await this.open()
    if (!conversation) return this.runner.run(...IPSET_RESTORE_ARGS, options)
    const output = await conversation.ask(lines.map((line) => `${line}\n${PROBE}\n`).join(''), answered(lines.length))
    const answers = lineAnswers(output, lines.length)!
    const failed = answers.findIndex((said) => said.trim() !== '')
    if (failed >= 0) {
      const stderr = answers
        .map((said, i) => (said.trim() === '' ? '' : `line ${i + 1}: ${said.trim()}\n`))
        .join('')
      throw new CommandError(...IPSET_RESTORE_ARGS, 1, stderr)
    }
    return {stdout: '', stderr: '', exitCode: 0}
  }

  private async open(): Promise<Conversation | undefined> {
    if (this.unusable || !this.runner.converse) return undefined
    if (this.conversation && !this.conversation.ended) return this.conversation
    const conversation = this.runner.converse(...IPSET_INTERACTIVE)
    try {
      const said = lineAnswers(await conversation.ask(`${PROBE}\n`, answered(1), FIRST_ANSWER_MS), 1)![0]!
      if (said.trim() !== '') throw new Error(said)
    } catch {
      // An ipset without the interactive mode, or one that answers otherwise: `ipset restore` as before, for good.
      conversation.close()
      this.unusable = true
      return undefined
    }
    this.conversation = conversation
    return conversation
  }
}

const IPSET_RESTORE_ARGS: [string, string[]] = [IPSET_RESTORE[0], [...IPSET_RESTORE[1]]]
