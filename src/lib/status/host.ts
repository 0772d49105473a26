/** The host at a glance: forwarding, tools, the lock's holder, external interfaces and their reply tables. */
import {forwardDropProblem, type ForwardDrop} from '../backend/forward.js'
import {inspectLock} from '../host/lock.js'
import type {Runner} from '../host/runner.js'
import {readSysctlsOrNull} from '../host/sysctl.js'
import type {ToolVersions} from '../host/tool-versions.js'
import {checkTools, type ToolName} from '../host/tools.js'
import {interfaceFaultProblem} from '../plan/interfaces.js'
import type {HostInfo, InterfaceFault, NatModel} from '../plan/model.js'

export interface ToolLine {
  name: string
  present: boolean
  version: string | null
  /** How to install it when it is missing. */
  install: string | null
}

export interface InterfaceStatus {
  name: string
  /** `198.18.0.10/24`, primary first. */
  addresses: string[]
  /** Index held in connection marks; null when the plan has no such interface. */
  index: number | null
  /** Routing table carrying its replies, `main` for the default-gateway interface. */
  table: number | 'main' | null
  gateway: string | null
  /** Effective reverse-path filter: the larger of `all` and the interface's own value. */
  rpFilter: number | null
  /** Why this host cannot serve the interface (its Mappings' addresses on it are not programmed); null when it can. */
  fault: string | null
}

export interface HostStatus {
  /** Value of net.ipv4.ip_forward, null when it could not be read. */
  ipForward: string | null
  tools: ToolLine[]
  iptablesFlavour: 'nf_tables' | 'legacy' | null
  /** `held` by the lock itself; `holder` as the lock file describes it, `alive: false` when that holder let go without clearing it (killed). */
  lock: {path: string; held: boolean; holder: {pid: number; purpose: string | null; since: string | null; alive: boolean} | null}
  interfaces: InterfaceStatus[]
  /** Failed prerequisites, each with what to do about it; empty when all hold. */
  problems: string[]
}

const RP_STRICT = 1

/** What the host says before the plan is known: tool versions, forwarding, and `all`'s reverse-path filter. */
export interface HostProbes {
  tools: ToolLine[]
  iptablesFlavour: HostStatus['iptablesFlavour']
  ipForward: string | null
  rpFilterAll: number | null
}

const GLOBAL_SYSCTLS = ['net.ipv4.ip_forward', 'net/ipv4/conf/all/rp_filter']

/**
 * Reads the tools' versions and the global sysctls, all at once (a runner that batches them,
 * oneShellRunner, runs them as one process); with `versions`, only the versions not known for the tools' executables.
 */
export async function probeHost(runner: Runner, names: ToolName[], versions?: ToolVersions): Promise<HostProbes> {
  const [{tools, iptablesFlavour}, [ipForward = null, all = null]] = await Promise.all([toolLines(runner, names, versions), readSysctlsOrNull(runner, GLOBAL_SYSCTLS)])
  return {tools, iptablesFlavour, ipForward, rpFilterAll: numberOrNull(all)}
}

/** Gathers the host's prerequisites and interfaces from its probes; changes nothing, and reads what needs root only when it can. */
export async function gatherHostStatus(
  runner: Runner,
  options: {
    probes: HostProbes
    /** Chains that drop smartnat's forwarded connections (Backend.forward). */
    forwardDrops: ForwardDrop[]
    lockPath: string
    host: HostInfo
    model: NatModel
    interfaceFaults: InterfaceFault[]
  },
): Promise<HostStatus> {
  const problems: string[] = []
  const {tools, iptablesFlavour, ipForward, rpFilterAll: all} = options.probes
  for (const t of tools) if (!t.present) problems.push(`${t.name} is missing; install it with \`${t.install}\``)

  if (ipForward !== '1') problems.push(`net.ipv4.ip_forward is ${ipForward ?? 'unreadable'}: DNATed traffic cannot reach the cluster; \`sysctl -w net.ipv4.ip_forward=1\``)

  problems.push(...options.forwardDrops.map(forwardDropProblem))

  const [owns, lock] = await Promise.all([
    readSysctlsOrNull(
      runner,
      options.host.interfaces.map((iface) => `net/ipv4/conf/${iface.name}/rp_filter`),
    ),
    lockStatus(options.lockPath),
  ])
  const interfaces: InterfaceStatus[] = []
  options.host.interfaces.forEach((iface, i) => {
    const own = numberOrNull(owns[i] ?? null)
    const rpFilter = own === null || all === null ? own : Math.max(all, own)
    if (rpFilter === RP_STRICT) problems.push(`rp_filter is strict on ${iface.name}: replies routed by its own table may be dropped; \`smartnat sync\` makes it loose`)
    const planned = options.model.interfaces.find((p) => p.name === iface.name)
    const fault = options.interfaceFaults.find((f) => f.interface === iface.name)?.reason ?? null
    if (fault !== null) problems.push(interfaceFaultProblem(fault))
    interfaces.push({
      name: iface.name,
      addresses: iface.addresses.map((a) => `${a.address}/${a.prefixLength}`),
      index: planned?.index ?? null,
      table: planned ? (planned.table ?? 'main') : null,
      gateway: planned?.gateway ?? null,
      rpFilter,
      fault,
    })
  })
  return {ipForward, tools, iptablesFlavour, lock, interfaces, problems}
}

// Each tool is checked on its own, all at once: `ipset --version` fails without root, which only hides its version.
async function toolLines(runner: Runner, names: ToolName[], versions: ToolVersions | undefined): Promise<{tools: ToolLine[]; iptablesFlavour: HostStatus['iptablesFlavour']}> {
  const checked = await Promise.all(
    names.map(async (name): Promise<{line: ToolLine; flavour?: HostStatus['iptablesFlavour']}> => {
      try {
        const report = await checkTools(runner, [name], versions)
        const t = report.tools[0]!
        return {line: {name, present: t.present, version: t.present ? t.version : null, install: t.present ? null : t.install}, flavour: report.iptablesFlavour ?? null}
      } catch {
        return {line: {name, present: true, version: null, install: null}}
      }
    }),
  )
  return {tools: checked.map((c) => c.line), iptablesFlavour: checked.find((c) => c.flavour)?.flavour ?? null}
}

function numberOrNull(text: string | null): number | null {
  return text !== null && /^\d+$/.test(text) ? Number(text) : null
}

/** Who holds the lock, looked at without taking it; a lock file that cannot be read is reported as free. */
async function lockStatus(path: string): Promise<HostStatus['lock']> {
  const {held, holder} = await inspectLock(path).catch(() => ({held: false, holder: undefined}))
  if (!holder) return {path, held, holder: null}
  return {path, held, holder: {pid: holder.pid, purpose: holder.purpose ?? null, since: holder.acquiredAt, alive: held}}
}
