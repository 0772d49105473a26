/**
 * Several short commands from one process, `sh -c`: under `--netns` every process starts through
 * `ip netns exec`, and every start forks this process (about 2.5 ms each on the main thread), which
 * costs more than a version command, a sysctl read or reading an empty ruleset itself.
 */
import {CommandError, type RunOptions, type RunResult, type Runner} from './runner.js'
import {shellWord} from './shell-word.js'
import {shortHash} from '../net/hash.js'

/** What one command of the shell printed, exactly, and its exit status (127: sh could not find it). */
export interface ShellRun {
  stdout: string
  stderr: string
  exitCode: number
}

// The same for the same commands, so that the shell's command line is the same at every run of a
// command line and a read started ahead is recognised by it (read-ahead.ts); other for other commands,
// so that a shell run by another (a command of a batch) frames its own output with other markers.
const markOf = (commandLines: readonly string[]) => `@@smartnat-command-${shortHash(JSON.stringify(commandLines), 12)}`

/** A command of the shell: its words, and lines written to its stdin (`printf` piped into it) if any; or shell built-ins alone. */
export type ShellCommand = readonly [string, readonly string[], (readonly string[])?] | {readonly builtins: string}

/**
 * Each command's output and exit status, from one shell that frames them with marker lines on stdout
 * and stderr; undefined when the shell cannot be run or its output is not framed as written.
 */
export async function runInOneShell(runner: Runner, commands: readonly ShellCommand[]): Promise<ShellRun[] | undefined> {
  const commandLine = (shellCommand: ShellCommand) => {
    if ('builtins' in shellCommand) return shellCommand.builtins
    const [command, args, input] = shellCommand
    const words = [command, ...args].map(shellWord).join(' ')
    return input ? `printf '%s\\n' ${input.map(shellWord).join(' ')} | ${words}` : words
  }
  const lines = commands.map(commandLine)
  const mark = markOf(lines)
  // The echo before each marker ends a command's last line, so that the marker starts one; it is taken off again.
  const script = lines.map((line, i) => `echo; echo ${mark} ${i}; echo >&2; echo ${mark} ${i} >&2; ${line}; s=$?; echo; echo ${mark} ${i} exit $s`).join('; ')
  let result
  try {
    // The same reads at every run of a command line such as `status`: started ahead, if it ran before.
    result = await runner.run('sh', ['-c', script], {readAhead: true})
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
  const answer = (p: Pending, run: ShellRun | undefined) => {
    // 127: sh did not find it, where a process of its own fails to start (what a caller tells a missing tool by).
    if (!run || run.exitCode === 127) return void runAlone(p)
    if (run.exitCode !== 0 && !(p.options.okExitCodes ?? []).includes(run.exitCode)) p.reject(new CommandError(p.command, p.args, run.exitCode, run.stderr))
    else p.resolve(run)
  }
  const flush = async () => {
    const batch = pending
    pending = []
    if (batch.length === 1) return runAlone(batch[0]!)
    const {commands, answerers} = withIpBatches(batch, answer, runAlone)
    const runs = await runInOneShell(runner, commands)
    answerers.forEach((answerer, i) => answerer(runs?.[i]))
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

/**
 * The shell's commands for `batch`, and what answers the callers from each one's run: `ip` reads
 * asked for together with the same JSON options (`ip -4 -j rule show`, `ip -4 -j route show table
 * all`, `ip -j -4 addr show`) run as one `ip -batch -`, which prints each one's JSON on a line of its
 * own, exactly as it prints it alone: every process the shell starts costs a few milliseconds here.
 * When that `ip` fails (it stops at the first command that does) or prints anything else, each of
 * them runs on its own.
 */
function withIpBatches(
  batch: Pending[],
  answer: (p: Pending, run: ShellRun | undefined) => void,
  runAlone: (p: Pending) => void,
): {commands: ShellCommand[]; answerers: ((run: ShellRun | undefined) => void)[]} {
  const groups = new Map<string, Pending[]>()
  for (const p of batch) {
    const options = ipJsonOptions(p)
    if (options !== undefined) groups.set(options, [...(groups.get(options) ?? []), p])
  }
  const commands: ShellCommand[] = []
  const answerers: ((run: ShellRun | undefined) => void)[] = []
  for (const p of batch) {
    const sysctls = sysctlFiles(p)
    if (sysctls) {
      // Read by the shell itself: what `sysctl -n` prints, a value a line; a key it cannot read, and sysctl tells why.
      // dash's read answers 1 for some /proc/sys files it read whole, so what it read is checked instead.
      const values = sysctls.map((_, i) => `"$v${i}"`)
      const reads = sysctls.map((file, i) => `v${i}=; read -r v${i} < ${file};`).join(' ')
      commands.push({builtins: `{ ${reads} ${values.map((v) => `[ -n ${v} ]`).join(' && ')} && printf '%s\\n' ${values.join(' ')}; }`})
      answerers.push((run) => (run?.exitCode === 0 && run.stderr === '' ? p.resolve({stdout: run.stdout, stderr: '', exitCode: 0}) : runAlone(p)))
      continue
    }
    const group = groups.get(ipJsonOptions(p) ?? '')
    if (!group || group.length < 2) {
      commands.push([p.command, p.args])
      answerers.push((run) => answer(p, run))
      continue
    }
    if (group[0] !== p) continue
    const options = p.args.slice(0, ipWordsAt(p.args))
    commands.push(['ip', [...options, '-batch', '-'], group.map((g) => g.args.slice(ipWordsAt(g.args)).join(' '))])
    answerers.push((run) => {
      const lines = run?.exitCode === 0 && run.stderr === '' ? run.stdout.split('\n') : []
      const whole = lines.length === group.length + 1 && lines.at(-1) === '' && lines.slice(0, -1).every((line) => line.startsWith('['))
      group.forEach((g, i) => (whole ? g.resolve({stdout: `${lines[i]}\n`, stderr: '', exitCode: 0}) : runAlone(g)))
    })
  }
  return {commands, answerers}
}

/**
 * The files under /proc/sys of `sysctl -n KEY...`, a read with nothing else asked of it; undefined
 * for any other command. A dotted key has no dot in a component (sysctl reads `eth1.100` in a dotted
 * key as two); a key with slashes is a path already.
 */
function sysctlFiles(p: Pending): string[] | undefined {
  if (p.command !== 'sysctl' || p.args[0] !== '-n' || p.args.length < 2 || p.options.okExitCodes !== undefined || p.options.onStdout !== undefined) return undefined
  const keys = p.args.slice(1)
  if (keys.some((key) => !/^[\w./-]+$/.test(key) || key.startsWith('-') || key.split(/[./]/).some((part) => part === '' || part === '..'))) return undefined
  // sysctl's own rule: a key whose first separator is a slash is a path; else dots separate, and a slash stands for a dot.
  if (keys.some((key) => /^[^/]*\./.test(key) && key.includes('/'))) return undefined
  return keys.map((key) => `/proc/sys/${key.includes('/') ? key : key.replaceAll('.', '/')}`)
}

/** A word `ip -batch` reads back as that one word: no space, quote or other character its line splitting treats apart. */
const PLAIN_WORD = /^[\w./:=+-]+$/

const ipWordsAt = (args: readonly string[]) => args.findIndex((arg) => !arg.startsWith('-'))

/** `-4 -j` for `ip -j -4 addr show` and the like: an ip read whose only options are -j and -4, that `ip -batch` runs alike; undefined for any other command. */
function ipJsonOptions(p: Pending): string | undefined {
  if (p.command !== 'ip' || p.options.okExitCodes !== undefined || p.options.onStdout !== undefined) return undefined
  const at = ipWordsAt(p.args)
  if (at < 0) return undefined
  const options = p.args.slice(0, at)
  if (!options.includes('-j') || options.some((option) => option !== '-j' && option !== '-4')) return undefined
  const words = p.args.slice(at)
  // Reads only: a batch stops at its first failure, and nothing that changes or follows the kernel.
  if (!['rule', 'route', 'addr', 'address', 'link'].includes(words[0]!) || !words.includes('show')) return undefined
  if (words.some((word) => !PLAIN_WORD.test(word))) return undefined
  return [...new Set(options)].sort().join(' ')
}
