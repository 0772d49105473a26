/** The host at a glance: forwarding, tools, the lock's holder, external interfaces and their reply tables. */
import {forwardDropProblem, type ForwardDrop} from '../backend/forward.js'
import {inspectLock} from '../host/lock.js'
import type {Runner} from '../host/runner.js'
import {readSysctl} from '../host/sysctl.js'
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

/** Gathers the host's prerequisites and interfaces; changes nothing, and reads what needs root only when it can. */
export async function gatherHostStatus(
  runner: Runner,
  options: {
    tools: ToolName[]
    /** Chains that drop smartnat's forwarded connections (Backend.forward). */
    forwardDrops: ForwardDrop[]
    lockPath: string
    host: HostInfo
    model: NatModel
    interfaceFaults: InterfaceFault[]
  },
): Promise<HostStatus> {
  const problems: string[] = []
  const {tools, iptablesFlavour} = await toolLines(runner, options.tools)
  for (const t of tools) if (!t.present) problems.push(`${t.name} is missing; install it with \`${t.install}\``)

  const ipForward = await sysctlOrNull(runner, 'net.ipv4.ip_forward')
  if (ipForward !== '1') problems.push(`net.ipv4.ip_forward is ${ipForward ?? 'unreadable'}: DNATed traffic cannot reach the cluster; \`sysctl -w net.ipv4.ip_forward=1\``)

  problems.push(...options.forwardDrops.map(forwardDropProblem))

  const all = numberOrNull(await sysctlOrNull(runner, 'net/ipv4/conf/all/rp_filter'))
  const interfaces: InterfaceStatus[] = []
  for (const iface of options.host.interfaces) {
    const own = numberOrNull(await sysctlOrNull(runner, `net/ipv4/conf/${iface.name}/rp_filter`))
    const rpFilter = own === null || all === null ? own : Math.max(all, own)
    if (rpFilter === RP_STRICT) problems.push(`rp_filter is strict on ${iface.name}: replies routed by its own table may be dropped; \`smartnat sync\` makes it loose`)
    const planned = options.model.interfaces.find((i) => i.name === iface.name)
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
  }
  return {ipForward, tools, iptablesFlavour, lock: await lockStatus(options.lockPath), interfaces, problems}
}

// Tools are checked one at a time: `ipset --version` fails without root, which only hides its version.
async function toolLines(runner: Runner, names: ToolName[]): Promise<{tools: ToolLine[]; iptablesFlavour: HostStatus['iptablesFlavour']}> {
  const tools: ToolLine[] = []
  let iptablesFlavour: HostStatus['iptablesFlavour'] = null
  for (const name of names) {
    try {
      const report = await checkTools(runner, [name])
      const t = report.tools[0]!
      tools.push({name, present: t.present, version: t.present ? t.version : null, install: t.present ? null : t.install})
      iptablesFlavour ??= report.iptablesFlavour ?? null
    } catch {
      tools.push({name, present: true, version: null, install: null})
    }
  }
  return {tools, iptablesFlavour}
}

async function sysctlOrNull(runner: Runner, key: string): Promise<string | null> {
  try {
    return await readSysctl(runner, key)
  } catch {
    return null
  }
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
