/**
 * Several short commands from one process, `sh -c`: under `--netns` every process starts through
 * `ip netns exec`, and every start forks this process (about 2.5 ms each on the main thread), which
 * costs more than a version command, a sysctl read or reading an empty ruleset itself.
 */
import {CommandError, type RunOptions, type RunResult, type Runner} from './runner.js'

/** What one command of the shell printed, exactly, and its exit status (127: sh could not find it). */
export interface ShellRun {
  stdout: string
  stderr: string
  exitCode: number
}

// Per shell: a shell run by another (a command of a batch) frames its own output with other markers.
const newMark = () => `@@smartnat-command-${Math.random().toString(36).slice(2, 10)}`
const PLAIN_WORD = /^[\w./:=+-]+$/
const quote = (word: string) => (PLAIN_WORD.test(word) ? word : `'${word.replaceAll("'", "'\\''")}'`)

/**
 * Each command's output and exit status, from one shell that frames them with marker lines on stdout
 * and stderr; undefined when the shell cannot be run or its output is not framed as written.
 */
export async function runInOneShell(runner: Runner, commands: readonly (readonly [string, readonly string[]])[]): Promise<ShellRun[] | undefined> {
  const mark = newMark()
  // The echo before each marker ends a command's last line, so that the marker starts one; it is taken off again.
  const script = commands
    .map(([command, args], i) => `echo; echo ${mark} ${i}; echo >&2; echo ${mark} ${i} >&2; ${[command, ...args].map(quote).join(' ')}; s=$?; echo; echo ${mark} ${i} exit $s`)
    .join('; ')
  let result
  try {
    result = await runner.run('sh', ['-c', script])
  } catch {
    return undefined
  }
  const stdouts = framed(result.stdout, mark, commands.length, true)
  const stderrs = framed(result.stderr, mark, commands.length, false)
  if (!stdouts || !stderrs) return undefined
  return stdouts.map(({text, exit}, i) => ({stdout: text, stderr: stderrs[i]!.text, exitCode: exit}))
}

/**
 * Each command's part of the shell's stdout or stderr, with its exit status (stdout only); undefined
 * when the markers are not all there in order. Searched in the text, not split into lines: a
 * ruleset read this way may be megabytes.
 */
function framed(output: string, mark: string, count: number, withExit: boolean): {text: string; exit: number}[] | undefined {
  const parts: {text: string; exit: number}[] = []
  let at = 0
  for (let i = 0; i < count; i++) {
    const startLine = `\n${mark} ${i}\n`
    const start = output.indexOf(startLine, at)
    if (start < 0) return undefined
    const from = start + startLine.length
    // What the command printed ends at the newline of the echo before the next marker; the last
    // command's stderr, at the end of the output.
    const endLine = withExit ? `\n${mark} ${i} exit ` : `\n${mark} ${i + 1}\n`
    let end = output.indexOf(endLine, from)
    if (end < 0 && !withExit && i + 1 === count) end = output.length
    if (end < 0) return undefined
    let exit = 0
    if (withExit) {
      const statusAt = end + endLine.length
      const lineEnd = output.indexOf('\n', statusAt)
      const status = output.slice(statusAt, lineEnd < 0 ? undefined : lineEnd)
      if (!/^\d+$/.test(status)) return undefined
      exit = Number(status)
    }
    parts.push({text: output.slice(from, end), exit})
    at = end
  }
  return parts
}

interface Pending {
  command: string
  args: string[]
  options: RunOptions
  resolve: (result: RunResult) => void
  reject: (error: unknown) => void
}

/**
 * A runner that runs the commands asked of it in the same turn of the event loop as one shell
 * (runInOneShell), each answering as it would alone: a read-only command line such as `status`
 * asks for all its reads at once. A command with input runs on its own; when the shell fails or
 * cannot find a command, the commands run on their own, so that each fails as it would.
 */
export function oneShellRunner(runner: Runner): Runner {
  let pending: Pending[] = []
  const runAlone = (p: Pending) => runner.run(p.command, p.args, p.options).then(p.resolve, p.reject)
  const flush = async () => {
    const batch = pending
    pending = []
    if (batch.length === 1) return runAlone(batch[0]!)
    const runs = await runInOneShell(
      runner,
      batch.map((p) => [p.command, p.args]),
    )
    batch.forEach((p, i) => {
      const run = runs?.[i]
      // 127: sh did not find it, where a process of its own fails to start (what a caller tells a missing tool by).
      if (!run || run.exitCode === 127) return void runAlone(p)
      if (run.exitCode !== 0 && !(p.options.okExitCodes ?? []).includes(run.exitCode)) p.reject(new CommandError(p.command, p.args, run.exitCode, run.stderr))
      else p.resolve(run)
    })
  }
  const batching: Runner = {
    run(command, args, options = {}) {
      if (options.input !== undefined) return runner.run(command, args, options)
      return new Promise((resolve, reject) => {
        if (pending.length === 0) setImmediate(() => void flush())
        pending.push({command, args, options, resolve, reject})
      })
    },
  }
  if (runner.follow) batching.follow = runner.follow.bind(runner)
  return batching
}
