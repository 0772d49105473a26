/**
 * One `nft -i` a daemon keeps open for its element changes. An `nft -f` that deletes anything
 * (an element, a rule, a set) waits at its exit for one RCU grace period, 10-20 ms: closing an
 * nftables netlink socket makes the kernel finish freeing what earlier transactions deleted
 * (nft_rcv_nl_event flushes nf_tables_trans_destroy_work, which calls synchronize_rcu). A socket
 * that stays open commits as fast as an add, and no process is started per change.
 */
import {CommandError} from '../../host/command-error.js'
import type {Conversation} from '../../host/conversation.js'
import type {Runner} from '../../host/runner.js'

export const NFT_INTERACTIVE: readonly [string, string[]] = ['nft', ['-i']]

/**
 * Asked after every transaction: a line nft rejects as a syntax error, without the kernel, once the
 * line before it is done. nft writes errors, and only errors, on stderr: its own error message, the
 * line and a line of carets under it end the answer, and anything before them is about the
 * transaction.
 */
export const PROBE = 'smartnat_answered'
const PROBE_ANSWER = new RegExp(`^Error: [^\\n]*\\n${PROBE}\\n[ ^~]*\\n`, 'm')
/** How long nft -i gets to answer its first probe before `nft -f` is used instead. */
const FIRST_ANSWER_MS = 5000

/** Payloads larger than this go through `nft -f` (a whole table never comes here; this bounds a line of nft's line editor). */
export const MAX_SESSION_PAYLOAD = 256 * 1024
/** After this many transactions the process is started again: nft keeps every line in its line editor's history. */
export const QUESTIONS_PER_PROCESS = 1000
/** nft writes that history to $HOME/.nft.history at exit: nowhere, for smartnat's lines. */
const ENV = {HOME: '/nonexistent'}

/** Where the probe's answer ends, once it came. */
export function probeAnswered(output: string): number | undefined {
  const match = PROBE_ANSWER.exec(output)
  return match ? match.index + match[0].length : undefined
}

/** What nft said before the probe's answer; an error when a line of it starts with `Error:` (nft then committed nothing). */
export function transactionOutcome(output: string): {said: string; failed: boolean} {
  const said = output.slice(0, PROBE_ANSWER.exec(output)?.index ?? output.length)
  return {said, failed: /^Error:/m.test(said)}
}

/** The one-line form of a payload of one-line commands: nft runs a line as one transaction. */
export function sessionLine(payload: string): string {
  return payload
    .split('\n')
    .filter((line) => line !== '')
    .join('; ')
}

/** `nft -i` kept open, asked one transaction at a time; a runner that cannot keep a process open, or an nft that does not answer the probe, has none. */
export class NftSession {
  private conversation: Conversation | undefined
  private unusable = false
  private questions = 0

  constructor(private readonly runner: Runner) {}

  /** Whether `payload` (one-line commands) can go through the session; starts `nft -i` when needed. */
  async takes(payload: string): Promise<boolean> {
    if (this.unusable || !this.runner.converse || payload.length > MAX_SESSION_PAYLOAD) return false
    if (this.conversation && !this.conversation.ended) return true
    const conversation = this.runner.converse(...NFT_INTERACTIVE, {env: ENV})
    try {
      transactionOrThrow(await conversation.ask(`${PROBE}\n`, probeAnswered, FIRST_ANSWER_MS))
    } catch {
      // An nft without -i, or one that prints its answer otherwise: `nft -f` as before, for good.
      conversation.close()
      this.unusable = true
      return false
    }
    this.conversation = conversation
    this.questions = 0
    return true
  }

  /** Runs `payload` as one transaction; throws a CommandError with nft's message when it fails (nothing committed) or nft did not answer. */
  async run(payload: string): Promise<void> {
    const conversation = this.conversation
    if (!conversation || conversation.ended) throw new Error('nft -i is not running: ask takes() first')
    const output = await conversation.ask(`${sessionLine(payload)}\n${PROBE}\n`, probeAnswered)
    if (++this.questions >= QUESTIONS_PER_PROCESS) this.close()
    transactionOrThrow(output)
  }

  /** Ends `nft -i`; the next transaction starts it again. */
  close(): void {
    this.conversation?.close()
    this.conversation = undefined
  }
}

function transactionOrThrow(output: string): void {
  const {said, failed} = transactionOutcome(output)
  if (failed) throw new CommandError(...NFT_INTERACTIVE, 1, said)
}
