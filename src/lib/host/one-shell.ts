/**
 * Several short commands from one process, `sh -c`: under `--netns` every process starts through
 * `ip netns exec`, and every start forks this process (about 2.5 ms each on the main thread), which
 * costs more than a version command or a sysctl read itself.
 */
import type {Runner} from './runner.js'

/** What one command of the shell printed, without its final newline, and its exit status (127: sh could not find it). */
export interface ShellRun {
  stdout: string
  stderr: string
  exitCode: number
}

const MARK = '@@smartnat-command'
// The words are smartnat's own constants (tool names, options, sysctl keys), never input: nothing needs quoting.
const PLAIN_WORD = /^[\w./:=+-]+$/

/**
 * Each command's output and exit status, from one shell that frames them with marker lines on stdout
 * and stderr; undefined when the shell cannot be run or its output is not framed as written.
 */
export async function runInOneShell(runner: Runner, commands: readonly (readonly [string, readonly string[]])[]): Promise<ShellRun[] | undefined> {
  const words = commands.flatMap(([command, args]) => [command, ...args])
  const unsafe = words.find((word) => !PLAIN_WORD.test(word))
  if (unsafe !== undefined) throw new Error(`runInOneShell: ${JSON.stringify(unsafe)} would need quoting`)
  // An empty line before each marker: a command whose output ends without a newline leaves it on a line of its own.
  const script = commands
    .map(([command, args], i) => `echo; echo ${MARK} ${i}; echo >&2; echo ${MARK} ${i} >&2; ${[command, ...args].join(' ')}; s=$?; echo; echo ${MARK} ${i} exit $s`)
    .join('; ')
  let result
  try {
    result = await runner.run('sh', ['-c', script])
  } catch {
    return undefined
  }
  const stdouts = framed(result.stdout, commands.length, true)
  const stderrs = framed(result.stderr, commands.length, false)
  if (!stdouts || !stderrs) return undefined
  return stdouts.map(({text, exit}, i) => ({stdout: text, stderr: stderrs[i]!.text, exitCode: exit}))
}

/** Each command's part of the shell's stdout or stderr, with its exit status (stdout only); undefined when the markers are not all there in order. */
function framed(output: string, count: number, withExit: boolean): {text: string; exit: number}[] | undefined {
  const lines = output.split('\n')
  const parts: {text: string; exit: number}[] = []
  let index = 0
  for (let i = 0; i < count; i++) {
    const start = lines.indexOf(`${MARK} ${i}`, index)
    if (start < 0) return undefined
    let end = lines.length
    let exit = 0
    if (withExit) {
      const exitMark = `${MARK} ${i} exit `
      end = lines.findIndex((line, at) => at > start && line.startsWith(exitMark))
      if (end < 0) return undefined
      exit = Number(lines[end]!.slice(exitMark.length))
      if (!Number.isInteger(exit)) return undefined
    } else {
      const next = lines.indexOf(`${MARK} ${i + 1}`, start + 1)
      if (next >= 0) end = next
      else if (i + 1 < count) return undefined
    }
    // The echo before the next marker ends the command's last line, or adds an empty one after a newline.
    const text = lines.slice(start + 1, end)
    if (text.at(-1) === '') text.pop()
    parts.push({text: text.join('\n'), exit})
    index = end
  }
  return parts
}
