/**
 * Throwaway network namespaces for the kernel and data-plane benchmarks. Root only. Every
 * namespace is named `snb-<pid>-<role>` and deleted by `destroy()`, and at exit (normal, error,
 * SIGINT, SIGTERM) for any still standing.
 */
import {spawnSync} from 'node:child_process'
import type {Conversation} from '../src/lib/host/conversation.js'
import {ExecRunner, type Follower, type RunOptions, type RunResult, type Runner} from '../src/lib/host/runner.js'
import type {HostInfo} from '../src/lib/plan/model.js'
import {passedOnConversation} from '../test/support/passed-on-conversation.js'
import {unmetNeeds} from '../test/support/requirements.js'

const PREFIX = 'snb-'
const root = new ExecRunner({timeoutSeconds: 120})
const live = new Set<string>()

function deleteNow(name: string): void {
  const pids = spawnSync('ip', ['netns', 'pids', name], {encoding: 'utf8'}).stdout ?? ''
  for (const pid of pids.split('\n').filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  spawnSync('ip', ['netns', 'del', name])
  live.delete(name)
}

process.on('exit', () => {
  for (const name of live) deleteNow(name)
})
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const name of live) deleteNow(name)
    process.exit(130)
  })
}

/** Why the kernel benchmarks cannot run here, or undefined when they can (they work in throwaway network namespaces). */
export function kernelUnavailableReason(): string | undefined {
  return unmetNeeds('the kernel benchmarks', {root: true, tools: ['ip', 'iptables-restore', 'iptables-save', 'ipset', 'nft']})
}

/** Runs a kernel benchmark's `main` where it can run (failing under CI where it cannot); its verdict is the exit code. */
export async function runKernelBenchmark(main: () => Promise<boolean>): Promise<void> {
  const reason = kernelUnavailableReason()
  if (reason) {
    if (process.env.CI) throw new Error(`${reason}; CI must run it`)
    console.log(`skipped: ${reason}`)
    return
  }
  process.exitCode = (await main()) ? 0 : 1
}

/** A network namespace this process created. */
export interface BenchNamespace {
  readonly name: string
  /** Runs commands inside the namespace. */
  readonly runner: ExecRunner
  /** Runs `ip -batch -` with these lines inside the namespace. */
  ip(lines: string[]): Promise<void>
  destroy(): Promise<void>
}

/** Creates `snb-<pid>-<role>` with loopback up; a leftover of that name from a crashed run is removed first. */
export async function createNamespace(role: string): Promise<BenchNamespace> {
  const name = `${PREFIX}${process.pid}-${role}`
  if (name.length > 64) throw new Error(`namespace name ${name} is too long`)
  deleteNow(name)
  await root.run('ip', ['netns', 'add', name])
  live.add(name)
  const runner = new ExecRunner({timeoutSeconds: 120, netns: name})
  const ns: BenchNamespace = {
    name,
    runner,
    async ip(lines) {
      await runner.run('ip', ['-batch', '-'], {input: `${lines.join('\n')}\n`})
    },
    async destroy() {
      deleteNow(name)
    },
  }
  await ns.ip(['link set lo up'])
  return ns
}

/** One command a CountingRunner passed on. */
export interface CountedCall {
  command: string
  args: string[]
  /** What was written to stdin (restore payloads), or undefined. */
  input?: string
  inputLines: number
  ms: number
  /** performance.now() when the command had finished. */
  endedAt: number
}

function countLines(text: string): number {
  let lines = 0
  for (let at = text.indexOf('\n'); at !== -1; at = text.indexOf('\n', at + 1)) lines++
  return lines
}

/** Passes commands to another runner and records each one with its duration. */
export class CountingRunner implements Runner {
  calls: CountedCall[] = []

  constructor(private readonly inner: Runner) {}

  async run(command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    const started = performance.now()
    try {
      return await this.inner.run(command, args, options)
    } finally {
      const endedAt = performance.now()
      // Counted without splitting: recording a 100,000-line payload must not add to the apply that wrote it.
      this.calls.push({command, args, ...(options?.input ? {input: options.input} : {}), inputLines: countLines(options?.input ?? ''), ms: endedAt - started, endedAt})
    }
  }

  follow(command: string, args: string[], onOutput: (chunk: string) => void): Follower {
    if (!this.inner.follow) throw new Error(`${command}: the runner inside cannot follow a process`)
    return this.inner.follow(command, args, onOutput)
  }

  /** Each question asked is counted as a run of the command, with the question as its input. */
  converse(command: string, args: string[], options?: {env?: Record<string, string>}): Conversation {
    return passedOnConversation(this.inner, [command, args, options], async (input, ask) => {
      const started = performance.now()
      try {
        return await ask()
      } finally {
        const endedAt = performance.now()
        this.calls.push({command, args, input, inputLines: countLines(input), ms: endedAt - started, endedAt})
      }
    })
  }

  /** Forgets what was recorded so far and returns it. */
  take(): CountedCall[] {
    const taken = this.calls
    this.calls = []
    return taken
  }
}

/** A fresh namespace with the host's interfaces; destroyed after `body` however it ends. */
export async function withHostNamespace<T>(role: string, host: HostInfo, body: (ns: BenchNamespace) => Promise<T>): Promise<T> {
  const ns = await createNamespace(role)
  try {
    await addHostInterfaces(ns, host)
    return await body(ns)
  } finally {
    await ns.destroy()
  }
}

/** Gives the namespace the synthetic host's external interfaces (veth pairs) and addresses. */
export async function addHostInterfaces(ns: BenchNamespace, host: HostInfo): Promise<void> {
  const lines: string[] = []
  for (const iface of host.interfaces) {
    lines.push(`link add ${iface.name} type veth peer name ${iface.name}p`, `link set ${iface.name} up`, `link set ${iface.name}p up`)
    for (const a of iface.addresses) lines.push(`addr add ${a.address}/${a.prefixLength} dev ${iface.name}`)
  }
  await ns.ip(lines)
}
