/** Which of the command-line tools smartnat drives are installed, their versions, and how to install the missing ones. */
import {CommandError, type Runner} from './runner.js'
import type {ToolVersions} from './tool-versions.js'

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

/**
 * Runs each tool's version command; a tool that cannot be started is reported with how to install it.
 * With `versions`, a tool whose executable has not changed since it last answered is not asked again.
 */
export async function checkTools(runner: Runner, names: ToolName[], versions?: ToolVersions): Promise<ToolReport> {
  const kept = names.map((name) => versions?.get(name))
  // All at once: run one after the other they held up every sync and status by a process start each.
  const runs = await Promise.allSettled(names.map((name, i) => kept[i] ?? runner.run(name, TOOLS[name].versionArgs).then((run) => `${run.stdout}\n${run.stderr}`.trim())))
  const report: ToolReport = {tools: []}
  names.forEach((name, i) => {
    const run = runs[i]!
    if (run.status === 'rejected') {
      if (!isNotFound(run.reason)) throw run.reason
      report.tools.push({name, present: false, install: `apt-get install ${TOOLS[name].debianPackage}`})
      return
    }
    const output = run.value
    if (kept[i] === undefined) versions?.set(name, output)
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

// A missing binary cannot be started at all; under `ip netns exec` it is ip that fails, saying so on stderr.
function isNotFound(error: unknown): boolean {
  if (!(error instanceof CommandError)) return false
  return error.exitCode === undefined || /exec of ".*" failed: No such file or directory/.test(error.stderr)
}
