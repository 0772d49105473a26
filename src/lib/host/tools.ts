/** Which of the command-line tools smartnat drives are installed, their versions, and how to install the missing ones. */
import {CommandError, type Runner} from './runner.js'

export type ToolName = 'iptables' | 'ipset' | 'ip' | 'conntrack' | 'nft'

interface ToolSpec {
  versionArgs: string[]
  /** Debian/Ubuntu package that ships the tool. */
  debianPackage: string
}

const TOOLS: Record<ToolName, ToolSpec> = {
  iptables: {versionArgs: ['--version'], debianPackage: 'iptables'},
  ipset: {versionArgs: ['--version'], debianPackage: 'ipset'},
  ip: {versionArgs: ['-V'], debianPackage: 'iproute2'},
  conntrack: {versionArgs: ['--version'], debianPackage: 'conntrack'},
  nft: {versionArgs: ['--version'], debianPackage: 'nftables'},
}

export type ToolStatus =
  | {name: ToolName; present: true; version: string}
  | {name: ToolName; present: false; install: string}

export interface ToolReport {
  tools: ToolStatus[]
  /** Which kernel interface `iptables` drives, when iptables was checked and is present. */
  iptablesFlavour?: 'nf_tables' | 'legacy'
}

/** Runs each tool's version command; a tool that cannot be started is reported with how to install it. */
export async function checkTools(runner: Runner, names: ToolName[]): Promise<ToolReport> {
  // All at once: run one after the other they held up every sync and status by a process start each.
  const runs = await Promise.allSettled(names.map((name) => runner.run(name, TOOLS[name].versionArgs)))
  const report: ToolReport = {tools: []}
  names.forEach((name, i) => {
    const run = runs[i]!
    if (run.status === 'rejected') {
      if (!isNotFound(run.reason)) throw run.reason
      report.tools.push({name, present: false, install: `apt-get install ${TOOLS[name].debianPackage}`})
      return
    }
    const output = `${run.value.stdout}\n${run.value.stderr}`.trim()
    const version = output.split('\n')[0]?.trim() ?? ''
    report.tools.push({name, present: true, version})
    if (name === 'iptables') report.iptablesFlavour = /\(nf_tables\)/.test(output) ? 'nf_tables' : 'legacy'
  })
  return report
}

/** Fails naming every missing tool and the one apt-get command that installs them all. */
export function assertToolsPresent(report: ToolReport): void {
  const missing = report.tools.filter((tool) => !tool.present).map((tool) => tool.name)
  if (missing.length === 0) return
  const packages = [...new Set(missing.map((name) => TOOLS[name].debianPackage))]
  throw new Error(
    `missing tool${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}; on Debian/Ubuntu install with \`apt-get install ${packages.join(' ')}\``,
  )
}

/** One tool's version as a status shows it: null when it is present but its version command failed (`ipset --version` without root). */
export type ToolVersion = {name: ToolName; present: true; version: string | null} | {name: ToolName; present: false; install: string}

const MARK = '@@smartnat-tool'

/**
 * Every tool's version from one shell, `sh -c`: under `--netns` each process starts through `ip netns
 * exec`, which costs more than the version command itself. Each tool's output is framed by marker
 * lines on stdout and on stderr, with its exit status; undefined when the shell cannot be run or its
 * output is not framed as written, and the caller checks each tool on its own instead.
 */
export async function readToolVersions(runner: Runner, names: ToolName[]): Promise<{tools: ToolVersion[]; iptablesFlavour?: 'nf_tables' | 'legacy'} | undefined> {
  // Names and arguments are this file's constants, never input: nothing needs quoting.
  const script = names
    .map((name, i) => `echo; echo ${MARK} ${i}; echo >&2; echo ${MARK} ${i} >&2; ${name} ${TOOLS[name].versionArgs.join(' ')}; echo; echo ${MARK} ${i} exit $?`)
    .join('; ')
  let result
  try {
    result = await runner.run('sh', ['-c', script])
  } catch {
    return undefined
  }
  const stdouts = framed(result.stdout, names.length, true)
  const stderrs = framed(result.stderr, names.length, false)
  if (!stdouts || !stderrs) return undefined
  const report: {tools: ToolVersion[]; iptablesFlavour?: 'nf_tables' | 'legacy'} = {tools: []}
  names.forEach((name, i) => {
    const {text: stdout, exit} = stdouts[i]!
    // sh's own exit status for a command it cannot find on PATH.
    if (exit === 127) return report.tools.push({name, present: false, install: `apt-get install ${TOOLS[name].debianPackage}`})
    if (exit !== 0) return report.tools.push({name, present: true, version: null})
    const output = `${stdout}\n${stderrs[i]!.text}`.trim()
    report.tools.push({name, present: true, version: output.split('\n')[0]?.trim() ?? ''})
    if (name === 'iptables') report.iptablesFlavour = /\(nf_tables\)/.test(output) ? 'nf_tables' : 'legacy'
  })
  return report
}

/** Each tool's part of the shell's stdout or stderr, with its exit status (stdout only); undefined when the markers are not all there in order. */
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
      const found = lines.findIndex((line, at) => at > start && line.startsWith(`${MARK} ${i} exit `))
      if (found < 0) return undefined
      end = found
      exit = Number(lines[found]!.slice(`${MARK} ${i} exit `.length))
      if (!Number.isInteger(exit)) return undefined
    } else {
      const next = lines.indexOf(`${MARK} ${i + 1}`, start + 1)
      if (next >= 0) end = next
      else if (i + 1 < count) return undefined
    }
    parts.push({text: lines.slice(start + 1, end).join('\n'), exit})
    index = end
  }
  return parts
}

// A missing binary cannot be started at all; under `ip netns exec` it is ip that fails, saying so on stderr.
function isNotFound(error: unknown): boolean {
  if (!(error instanceof CommandError)) return false
  return error.exitCode === undefined || /exec of ".*" failed: No such file or directory/.test(error.stderr)
}
