/**
 * A `smartnat watch` daemon under test (the real CLI, from source): its log kept, its /readyz sampled
 * all along, killed or restarted on demand, and always ended. Every wait is bounded.
 */
import type {ChildProcess} from 'node:child_process'
import {readdirSync, readFileSync} from 'node:fs'
import {httpGet} from './http.js'
import {killSmartnat, startSmartnat, type RunningCli} from './smartnat-cli.js'

/** Commands that write to the kernel (restore payloads, ip batches), as their command line shows them. */
const APPLY_COMMAND = /(^|\s)(iptables-restore|ipset restore|nft -f|ip -batch)(\s|$)/
/** The `nft -i` and `ipset -exist -` a daemon keeps open for element changes: each writes to the kernel once it reads a line. */
const SESSION_COMMAND = /(^|\s)(nft -i|ipset -exist -)(\s|$)/

/** Daemons still running, killed if the test process exits first (their hard-limit timers die with it). */
const running = new Set<ChildProcess>()
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL')
})

export class WatchDaemon {
  private run: RunningCli
  private logText = ''

  /** Starts `smartnat ARGS...` (`watch ...`); `hardLimitMs` bounds each process however the test goes. */
  constructor(
    private readonly args: string[],
    private readonly hardLimitMs: number,
  ) {
    this.run = this.spawn()
  }

  get pid(): number {
    return this.run.child.pid!
  }

  /** The last `lines` lines the daemon (all its runs) printed. */
  tail(lines = 40): string {
    return this.logText.split('\n').slice(-lines).join('\n')
  }

  alive(): boolean {
    return this.run.child.exitCode === null && this.run.child.signalCode === null
  }

  /** Starts the same command again once the previous process has ended. */
  async restart(): Promise<void> {
    if (this.alive()) throw new Error(`watch daemon pid ${this.pid} is still running`)
    await this.run.done
    this.logText += '--- restarted ---\n'
    this.run = this.spawn()
  }

  /** SIGKILL, as the OOM killer or a node failure ends it. */
  async kill(): Promise<void> {
    await killSmartnat(this.run)
  }

  /** SIGTERM, then SIGKILL if it has not exited within 15 s. */
  async stop(): Promise<void> {
    if (!this.alive()) return void (await this.run.done)
    this.run.child.kill('SIGTERM')
    const timer = setTimeout(() => this.run.child.kill('SIGKILL'), 15_000)
    await this.run.done
    clearTimeout(timer)
  }

  /**
   * SIGKILLs the daemon the moment one of its children is a command that writes to the kernel (and
   * matches `only`), or its kept `nft -i` has begun to read a transaction; that command's line, or
   * undefined when none ran within `withinMs` (the daemon is left running).
   */
  async killDuringApply(withinMs: number, only = APPLY_COMMAND): Promise<string | undefined> {
    const deadline = Date.now() + withinMs
    // Characters each kept nft -i had read when first seen here: more means a transaction is coming in.
    const readBefore = new Map<number, number>()
    const writing = ({pid, line}: ChildCommand) => {
      if (APPLY_COMMAND.test(line)) return true
      if (!SESSION_COMMAND.test(line)) return false
      const read = charactersRead(pid)
      if (read === undefined) return false
      if (!readBefore.has(pid)) readBefore.set(pid, read)
      return read > readBefore.get(pid)!
    }
    while (Date.now() < deadline && this.alive()) {
      const command = childCommands(this.pid).find((child) => only.test(child.line) && writing(child))
      if (command) {
        await this.kill()
        return command.line
      }
      await new Promise((resolve) => setTimeout(resolve, 1))
    }
    return undefined
  }

  private spawn(): RunningCli {
    const run = startSmartnat(this.args, {timeoutMs: this.hardLimitMs})
    running.add(run.child)
    void run.done.then(() => running.delete(run.child))
    run.child.stdout!.on('data', (chunk: Buffer) => (this.logText += chunk.toString()))
    run.child.stderr!.on('data', (chunk: Buffer) => (this.logText += chunk.toString()))
    return run
  }
}

interface ChildCommand {
  pid: number
  line: string
}

/**
 * A process's descendants (of all its threads) and their command lines, read from /proc: the daemon
 * starts its tools through a kept shell (src/lib/host/launcher.ts), so they are its grandchildren.
 */
function childCommands(pid: number): ChildCommand[] {
  const commands: ChildCommand[] = []
  const children = (parent: number): number[] => {
    try {
      return readdirSync(`/proc/${parent}/task`).flatMap((task) => readFileSync(`/proc/${parent}/task/${task}/children`, 'utf8').split(' ').filter(Boolean).map(Number))
    } catch {
      // The process ended while being read.
      return []
    }
  }
  const pending = children(pid)
  while (pending.length > 0) {
    const child = pending.shift()!
    try {
      const line = readFileSync(`/proc/${child}/cmdline`, 'utf8').split('\0').join(' ').trim()
      if (line) commands.push({pid: child, line})
    } catch {
      // The child ended while being read.
    }
    pending.push(...children(child))
  }
  return commands
}

/** How many characters a process has read so far (`rchar` of /proc/PID/io), or undefined once it is gone. */
function charactersRead(pid: number): number | undefined {
  try {
    const rchar = /^rchar: (\d+)$/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))
    return rchar ? Number(rchar[1]) : undefined
  } catch {
    return undefined
  }
}

/** One answer of /readyz: when it was asked and its status (0 when nothing answered). */
export interface ReadySample {
  at: number
  status: number
}

/** Asks a daemon's /readyz every 100 ms until stopped, keeping every answer. */
export class ReadinessRecorder {
  readonly samples: ReadySample[] = []
  private running = true
  private readonly loop: Promise<void>

  constructor(private readonly port: number) {
    this.loop = this.sample()
  }

  /** Milliseconds from `since` to the first ready answer asked at or after it. */
  readyAfter(since: number): number | undefined {
    const ready = this.samples.find((s) => s.at >= since && s.status === 200)
    return ready === undefined ? undefined : ready.at - since
  }

  /** Waits (at most `ms`) for a ready answer asked at or after `since`; the milliseconds it took. */
  async waitReady(since: number, ms: number): Promise<number> {
    const deadline = Date.now() + ms
    for (;;) {
      const after = this.readyAfter(since)
      if (after !== undefined) return after
      if (Date.now() > deadline) throw new Error(`/readyz not 200 within ${ms} ms (last answer: ${this.last()})`)
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }

  /** Milliseconds between `from` and `to` during which /readyz was not 200, counted sample by sample. */
  notReadyMs(from: number, to: number): number {
    let total = 0
    const inWindow = this.samples.filter((s) => s.at >= from && s.at <= to)
    inWindow.forEach((sample, i) => {
      if (sample.status !== 200) total += (inWindow[i + 1]?.at ?? to) - sample.at
    })
    return total
  }

  async stop(): Promise<void> {
    this.running = false
    await this.loop
  }

  private last(): string {
    const sample = this.samples.at(-1)
    if (!sample) return 'none yet'
    return sample.status === 0 ? 'no answer' : String(sample.status)
  }

  private async sample(): Promise<void> {
    while (this.running) {
      const at = Date.now()
      const status = await httpGet(this.port, '/readyz').then((reply) => reply.status, () => 0)
      this.samples.push({at, status})
      await new Promise((resolve) => setTimeout(resolve, 100))
    }
  }
}
