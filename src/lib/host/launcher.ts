/**
 * A daemon's processes, started by one kept shell instead of by the daemon. Node.js starts a process
 * by forking itself: with a daemon's heap of 100-150 MB that stops its event loop for 5-7 ms a
 * process, and every page the daemon writes afterwards faults once more, copy on write, until the
 * child has exec'd. A shell of a megabyte forks for almost nothing (docs/benchmarks.md, "Processes
 * started by a kept shell").
 *
 * Each process reads its input from a file and writes its output and errors to files, in a directory
 * of the daemon's own; the shell says on its stdout each process's pid once started, and its exit
 * status once ended. A command with output handed over as it comes (a kernel listing) starts as
 * before, as do followers and conversations.
 */
import {mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {ChildProcessWithoutNullStreams} from 'node:child_process'
import {CommandError} from './command-error.js'
import {shellWord} from './shell-word.js'
import type {RunOptions, RunResult, Runner} from './runner.js'

/** How the launcher starts its shell, and what a process may take. */
export interface LauncherOptions {
  /** Starts `sh` reading commands on its stdin, as the inner runner would start it (its network namespace, ended with the daemon). */
  startShell: () => ChildProcessWithoutNullStreams
  timeoutMs: number
  killAfterMs: number
  /** Where the directory of input and output files is made; the system's temporary directory unless given. */
  directory?: string
}

/** After this many shells ended under it, the launcher gives up and every process starts as before. */
const SHELLS_AT_MOST = 3

interface Job {
  id: number
  command: string
  args: string[]
  options: RunOptions
  pid?: number
  timedOut: boolean
  timer: NodeJS.Timeout
  killTimer?: NodeJS.Timeout
  resolve: (result: RunResult) => void
  reject: (error: unknown) => void
}

/** The shell and the jobs it started; one per shell, so that a shell that ended takes only its own jobs along. */
class Shell {
  readonly jobs = new Map<number, Job>()
  ended = false
  private buffered = ''

  constructor(
    readonly child: ChildProcessWithoutNullStreams,
    private readonly onLine: (shell: Shell, line: string) => void,
    private readonly onEnd: (shell: Shell) => void,
  ) {
    child.stdout.setEncoding('utf8')
    child.stdout.on('data', (chunk: string) => this.take(chunk))
    // The shell says nothing on its stderr but a message of its own: read, so that it never blocks.
    child.stderr.resume()
    child.stdin.on('error', () => undefined)
    child.once('error', () => this.end())
    child.once('exit', () => this.end())
    // Only a job waiting keeps the daemon alive (its timer), not the shell.
    child.unref()
    for (const pipe of [child.stdin, child.stdout, child.stderr]) (pipe as unknown as {unref?: () => void}).unref?.()
  }

  write(line: string): void {
    this.child.stdin.write(line)
  }

  private take(chunk: string): void {
    this.buffered += chunk
    let newline
    while ((newline = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, newline)
      this.buffered = this.buffered.slice(newline + 1)
      this.onLine(this, line)
    }
  }

  private end(): void {
    if (this.ended) return
    this.ended = true
    this.onEnd(this)
  }
}

/**
 * A runner that starts the processes of `run` through a kept shell, and everything else through
 * `inner`. When the shell cannot be started, or ended before starting a process, the process starts
 * through `inner`; one that the shell had started when it ended fails, as it may have done its work.
 */
export class LaunchingRunner implements Runner {
  private shell: Shell | undefined
  private shellsStarted = 0
  private directory: string | undefined
  private nextId = 0

  constructor(
    private readonly inner: Runner,
    private readonly options: LauncherOptions,
  ) {
    if (inner.follow) this.follow = inner.follow.bind(inner)
    if (inner.converse) this.converse = inner.converse.bind(inner)
  }

  follow?: Runner['follow']
  converse?: Runner['converse']

  run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const shell = options.onStdout ? undefined : this.openShell()
    if (!shell) return this.inner.run(command, args, options)
    const id = this.nextId++
    const base = join(this.directory!, String(id))
    try {
      writeFileSync(`${base}.in`, options.input ?? '')
    } catch {
      return this.inner.run(command, args, options)
    }
    return new Promise((resolve, reject) => {
      const job: Job = {id, command, args, options, timedOut: false, resolve, reject, timer: setTimeout(() => this.timeOut(shell, job), this.options.timeoutMs)}
      shell.jobs.set(id, job)
      const line = [command, ...args].map(shellWord).join(' ')
      shell.write(`{ ${line} <${base}.in >${base}.out 2>${base}.err & echo "${id} pid $!"; wait $!; echo "${id} exit $?"; } &\n`)
    })
  }

  /** Ends the shell and removes the directory; jobs still waiting fail. */
  close(): void {
    this.shellsStarted = SHELLS_AT_MOST
    this.shell?.child.kill('SIGKILL')
    if (this.directory) rmSync(this.directory, {recursive: true, force: true})
  }

  private openShell(): Shell | undefined {
    if (this.shell && !this.shell.ended) return this.shell
    if (this.shellsStarted >= SHELLS_AT_MOST) return undefined
    this.shellsStarted++
    try {
      if (!this.directory) {
        // Named by the pid: one there already is a dead process's, as a daemon killed outright leaves
        // it (in a container the daemon is pid 1 every time). Made anew, so that it is the daemon's own.
        const parent = this.options.directory ?? tmpdir()
        const directory = join(parent, `smartnat-run-${process.pid}`)
        removeDeadDaemons(parent)
        rmSync(directory, {recursive: true, force: true})
        mkdirSync(directory, {mode: 0o700})
        this.directory = directory
        process.once('exit', () => rmSync(directory, {recursive: true, force: true}))
      }
      this.shell = new Shell(
        this.options.startShell(),
        (shell, line) => this.heard(shell, line),
        (shell) => this.shellEnded(shell),
      )
    } catch {
      this.shellsStarted = SHELLS_AT_MOST
      return undefined
    }
    return this.shell
  }

  private heard(shell: Shell, line: string): void {
    const match = /^(\d+) (pid|exit) (\d+)$/.exec(line)
    if (!match) return
    const job = shell.jobs.get(Number(match[1]))
    if (!job) return
    const value = Number(match[3])
    if (match[2] === 'pid') {
      job.pid = value
      if (job.timedOut) this.kill(job)
      return
    }
    shell.jobs.delete(job.id)
    this.finish(job, value)
  }

  private finish(job: Job, status: number): void {
    clearTimeout(job.timer)
    clearTimeout(job.killTimer)
    const base = join(this.directory!, String(job.id))
    let stdout = ''
    let stderr = ''
    let unreadable: unknown
    try {
      stdout = readFileSync(`${base}.out`, 'utf8')
      stderr = readFileSync(`${base}.err`, 'utf8')
    } catch (error) {
      unreadable = error
    }
    this.removeFiles(job)
    const {command, args, options} = job
    if (unreadable) return job.reject(new CommandError(command, args, undefined, '', {cause: unreadable}))
    if (job.timedOut) return job.reject(new CommandError(command, args, undefined, stderr, {timedOut: true}))
    // 127: the shell did not find it, where a process of its own fails to start (what a caller tells a missing tool by).
    if (status === 127 && /not found/.test(stderr)) return job.reject(new CommandError(command, args, undefined, stderr, {cause: Object.assign(new Error(stderr.trim()), {code: 'ENOENT'})}))
    const signal = status > 128 ? signalName(status - 128) : undefined
    if (signal) return job.reject(new CommandError(command, args, undefined, stderr, {signal}))
    if (status !== 0 && !(options.okExitCodes ?? []).includes(status)) return job.reject(new CommandError(command, args, status, stderr))
    job.resolve({stdout, stderr, exitCode: status})
  }

  /** The job's input, output and error files: gone once its result is taken, or lost. */
  private removeFiles(job: Job): void {
    for (const suffix of ['.in', '.out', '.err']) rmSync(join(this.directory!, `${job.id}${suffix}`), {force: true})
  }

  private timeOut(shell: Shell, job: Job): void {
    job.timedOut = true
    // Not started yet: the shell does not answer, and goes; the job fails as timed out with it.
    if (job.pid === undefined) return void shell.child.kill('SIGKILL')
    this.kill(job)
  }

  private kill(job: Job): void {
    const signal = (name: NodeJS.Signals) => {
      try {
        process.kill(job.pid!, name)
      } catch {
        // Gone already: its exit status is on its way.
      }
    }
    signal('SIGTERM')
    job.killTimer = setTimeout(() => signal('SIGKILL'), this.options.killAfterMs)
  }

  private shellEnded(shell: Shell): void {
    if (this.shell === shell) this.shell = undefined
    for (const job of shell.jobs.values()) {
      clearTimeout(job.timer)
      clearTimeout(job.killTimer)
      this.removeFiles(job)
      const {command, args, options} = job
      if (job.timedOut) job.reject(new CommandError(command, args, undefined, '', {timedOut: true}))
      else if (job.pid === undefined) this.inner.run(command, args, options).then(job.resolve, job.reject)
      else job.reject(new CommandError(command, args, undefined, '', {lost: true}))
    }
    shell.jobs.clear()
  }
}

function signalName(number: number): NodeJS.Signals | undefined {
  const {signals} = process.getBuiltinModule('node:os').constants
  return (Object.keys(signals) as NodeJS.Signals[]).find((name) => signals[name] === number)
}

/**
 * Removes the directories that daemons killed outright left beside ours, named by pids no process has
 * any more. One of a live process (another daemon, of another user or namespace) stays, as does one
 * this user may not remove.
 */
function removeDeadDaemons(parent: string): void {
  let names: string[]
  try {
    names = readdirSync(parent)
  } catch {
    return
  }
  for (const name of names) {
    const pid = /^smartnat-run-(\d+)$/.exec(name)?.[1]
    // Ours is running too: made anew by the caller.
    if (!pid || isRunning(Number(pid))) continue
    try {
      rmSync(join(parent, name), {recursive: true, force: true})
    } catch {
      // Not ours to remove.
    }
  }
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'
  }
}
