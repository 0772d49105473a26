/**
 * A process kept running to answer one question after another on its stdin (`nft -i`), for a daemon
 * that would otherwise start the same tool for every change.
 */
import {CommandError} from './command-error.js'
import {PIPES_AFTER_EXIT_MS} from './process.js'

/** A long-lived process asked one question at a time, answering on its stderr (nft -i says nothing else there). */
export interface Conversation {
  /**
   * Writes `input` and resolves with the output up to the index `answered` returns (undefined while
   * the answer is incomplete); rejects with a CommandError when the process ends or `timeoutMs` passes
   * first, after which the conversation is over.
   */
  ask(input: string, answered: (output: string) => number | undefined, timeoutMs?: number): Promise<string>
  /** True once the process ended or was closed: ask no more. */
  readonly ended: boolean
  /** Ends the process: end of its stdin, SIGKILL if it is still there `killAfterMs` later. */
  close(): void
}

/** How a conversation runs; `file` and `argv` are what is spawned, `command` and `args` how errors name it. */
export interface ConversationOptions {
  command: string
  args: string[]
  file: string
  argv: string[]
  env: NodeJS.ProcessEnv
  timeoutMs: number
  killAfterMs: number
}

interface Question {
  answered: (output: string) => number | undefined
  resolve: (output: string) => void
  reject: (error: Error) => void
  timer: NodeJS.Timeout
}

/**
 * Starts the process. It keeps neither the event loop nor the daemon alive: only a question waiting
 * for its answer does, and the process ends with the daemon (end of its stdin).
 */
export function startConversation(options: ConversationOptions): Conversation {
  const {command, args} = options
  // Its stdout is not read: what an interactive tool prints there (a prompt, an echo) is no answer.
  const child = process.getBuiltinModule('node:child_process').spawn(options.file, options.argv, {env: options.env, stdio: ['pipe', 'ignore', 'pipe']})
  child.stderr.setEncoding('utf8')
  child.unref()
  // Pipes are sockets underneath, which can be unreferenced.
  for (const pipe of [child.stderr, child.stdin]) (pipe as unknown as {unref?: () => void}).unref?.()
  let output = ''
  let question: Question | undefined
  let ended = false

  const fail = (error: Error) => {
    ended = true
    const asked = question
    question = undefined
    if (asked) {
      clearTimeout(asked.timer)
      asked.reject(error)
    }
  }
  const answer = () => {
    if (!question) return
    const end = question.answered(output)
    if (end === undefined) return
    const asked = question
    question = undefined
    clearTimeout(asked.timer)
    const said = output.slice(0, end)
    output = output.slice(end)
    asked.resolve(said)
  }
  child.stderr.on('data', (chunk: string) => {
    output += chunk
    answer()
  })
  child.stdin.on('error', () => undefined)
  child.once('error', (error) => fail(new CommandError(command, args, undefined, output, {cause: error})))
  child.once('exit', (exitCode, signal) => {
    const exited = () => fail(new CommandError(command, args, exitCode ?? undefined, output, signal ? {signal} : {}))
    // Node.js may learn of the exit before it has read what the process wrote last, an answer
    // perhaps: its stderr is read to the end first, for as long as a process left behind lets it.
    if (child.stderr.readableEnded) return exited()
    child.stderr.once('end', exited)
    setTimeout(exited, PIPES_AFTER_EXIT_MS).unref()
  })

  const close = () => {
    ended = true
    child.stdin.end()
    setTimeout(() => child.kill('SIGKILL'), options.killAfterMs).unref()
  }
  return {
    get ended() {
      return ended
    },
    ask(input, answered, timeoutMs = options.timeoutMs) {
      if (ended) return Promise.reject(new Error(`${[command, ...args].join(' ')} has ended`))
      if (question) return Promise.reject(new Error(`${command}: a question is already waiting for its answer`))
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          fail(new CommandError(command, args, undefined, output, {timedOut: true}))
          close()
        }, timeoutMs)
        question = {answered, resolve, reject, timer}
        child.stdin.write(input)
        answer()
      })
    },
    close,
  }
}
