/** A kept process's conversation passed on by a recording runner (the e2e command log, the benchmarks' counting runner). */
import type {Conversation} from '../../src/lib/host/conversation.js'
import type {Runner} from '../../src/lib/host/runner.js'

/** The inner runner's conversation with `command`, each question asked through `around`, which asks it by calling `ask`. */
export function passedOnConversation(
  inner: Runner,
  [command, args, options]: [string, string[], {env?: Record<string, string>} | undefined],
  around: (input: string, ask: () => Promise<string>) => Promise<string>,
): Conversation {
  if (!inner.converse) throw new Error(`${command}: the runner inside cannot keep a process open`)
  const conversation = inner.converse(command, args, options)
  return {
    get ended() {
      return conversation.ended
    },
    close: () => conversation.close(),
    ask: (input, answered, timeoutMs) => around(input, () => conversation.ask(input, answered, timeoutMs)),
  }
}
