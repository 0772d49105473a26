/** Explains what happens to one packet: through the desired rules and through the kernel's, and why. */
import type {Inspector} from '../backend/backend.js'
import {endpointName} from '../backend/parts.js'
import type {Trace, TraceStep} from '../backend/trace-packet.js'
import {readAllocated} from '../mapping/dynamic.js'
import type {Protocol} from '../mapping/types.js'
import {cidrContains, parseIpv4, type Cidr, type Ipv4} from '../net/ipv4.js'
import {hex, interfaceMark} from '../net/marks.js'
import {namesOf} from '../plan/order.js'
import type {Inspection} from '../inspect/inspection.js'
import {errorChain} from '../observe/log.js'
import type {MemberRoute} from './routes.js'

/** A new connection's first packet, as given on the command line. */
export interface PacketSpec {
  src: Ipv4
  dst: Ipv4
  port: number
  protocol: Protocol
  inInterface?: string
}

/**
 * forward: DNATed to a Service or (mode direct) to a member of an endpoint group; drop: smartnat's
 * rules drop it; reject: refused, as a mode-direct port without endpoints is; unmatched: smartnat leaves it alone.
 */
export type PacketVerdict = 'forward' | 'drop' | 'reject' | 'unmatched'

/** Mode direct: the endpoint group a new connection is sent to, one member picked at random (or by ClientIP affinity). */
export interface GroupReport {
  /** `namespace/name protocol/servicePort` */
  id: string
  /** `ip:port` */
  members: string[]
  affinitySeconds: number | null
}

/** One trace, desired or the kernel's, in output form. */
export interface TraceReport {
  verdict: PacketVerdict
  mapping: string | null
  target: string | null
  masquerade: boolean
  /** The one source address masqueraded connections get (an HA pair's cluster-side address); absent for the interface's own. */
  masqueradeTo?: string
  /** The rule that dropped or refused the packet. */
  dropRule: string | null
  /** Mode direct: the group the packet is sent to; null otherwise. */
  group: GroupReport | null
  /** How a refused packet is answered; null unless the verdict is reject. */
  rejectWith: 'tcp-reset' | 'icmp-port-unreachable' | null
  steps: TraceStep[]
}

/** Where replies go: the connection's interface mark picks a routing table. */
export interface ReplyPath {
  interface: string
  /** Connection mark, `0x100000`. */
  mark: string
  /** Routing table id, or `main` for the default-gateway interface. */
  table: number | 'main'
  gateway: string | null
  /** Whether the kernel has the ip rule and routes of that table; null when it could not be read. */
  inKernel: boolean | null
}

export interface PacketExplanation {
  packet: {src: string; dst: string; protocol: Protocol; inInterface: string | null}
  /** What the packet really does: the kernel's trace when the kernel could be read, else the desired one. */
  verdict: PacketVerdict
  mapping: string | null
  /** `ip:port` of the DNAT, or in mode direct `group ID`. */
  target: string | null
  /** Mode direct: the group new connections go to, with its members. */
  group: GroupReport | null
  decidedBy: 'kernel' | 'desired'
  /** The Mapping's allowedSources entry that admits the source. */
  allowedSource: string | null
  reason: string
  reply: ReplyPath | null
  steps: TraceStep[]
  desired: TraceReport
  kernel: TraceReport | null
  /** null when there is no kernel trace to compare. */
  agree: boolean | null
  warnings: string[]
  /** Mode direct: this host's route to each member of the group; null when not looked up. */
  routes: MemberRoute[] | null
  /** Why the routes could not be looked up; null otherwise. */
  routeError: string | null
}

/** Parses `--src IP` and `--dst IP:PORT[/tcp|udp]` (tcp by default). */
export function parsePacketSpec(src: string, dst: string, inInterface?: string): PacketSpec {
  const source = parseIpv4(src)
  if (!source) throw new Error(`--src ${JSON.stringify(src)}: not an IPv4 address`)
  const match = /^([^:/]+):(\d+)(?:\/(\w+))?$/.exec(dst)
  if (!match) throw new Error(`--dst ${JSON.stringify(dst)}: expected IP:PORT or IP:PORT/tcp or IP:PORT/udp`)
  const destination = parseIpv4(match[1])
  if (!destination) throw new Error(`--dst ${JSON.stringify(dst)}: ${JSON.stringify(match[1])} is not an IPv4 address`)
  const port = Number(match[2])
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`--dst ${JSON.stringify(dst)}: port must be 1..65535`)
  const protocol = (match[3] ?? 'tcp').toLowerCase()
  if (protocol !== 'tcp' && protocol !== 'udp') throw new Error(`--dst ${JSON.stringify(dst)}: protocol must be tcp or udp`)
  return {src: source, dst: destination, port, protocol, ...(inInterface ? {inInterface} : {})}
}

/** Traces `spec` through the desired state and, when readable, the kernel's, and says which one the packet follows. */
export function explainPacket<State>(inspection: Inspection<State>, inspector: Pick<Inspector<State>, 'trace'>, spec: PacketSpec): PacketExplanation {
  const warnings: string[] = []
  const inInterface = spec.inInterface ?? inspection.host.interfaces.find((i) => i.addresses.some((a) => a.address === spec.dst))?.name
  if (!inInterface) warnings.push(`${spec.dst} is on none of this host's external interfaces; traced without an input interface`)
  const packet = {src: spec.src, dst: spec.dst, protocol: spec.protocol, port: spec.port, ...(inInterface ? {inInterface} : {})}

  const desiredTrace = inspector.trace(inspection.desired, packet)
  const desired = traceReport(desiredTrace)
  let kernelTrace: Trace | undefined
  if (!inspection.kernel.readable) {
    warnings.push(`cannot read the kernel's rules (${inspection.kernel.reason}); showing the desired rules only`)
  } else {
    try {
      kernelTrace = inspector.trace(inspection.kernel.state, packet)
    } catch (error) {
      warnings.push(`cannot trace the kernel's rules: ${errorChain(error)}; showing the desired rules only`)
    }
  }
  const kernel = kernelTrace ? traceReport(kernelTrace) : null
  const agree = kernel ? sameOutcome(desired, kernel) : null
  const decided = kernel ?? desired
  if (kernel && !agree) {
    warnings.push(`the kernel's rules disagree with the desired state: desired ${outcome(desired)}, kernel ${outcome(kernel)}; the packet follows the kernel`)
  }

  const allowedSource = decided.verdict === 'forward' ? allowedSourceOf(inspection, decided.mapping, spec) : null
  const reply = decided.verdict === 'forward' ? replyPath(inspection, (kernelTrace ?? desiredTrace).marks.interfaceIndex) : null
  return {
    packet: {src: spec.src, dst: `${spec.dst}:${spec.port}`, protocol: spec.protocol, inInterface: inInterface ?? null},
    verdict: decided.verdict,
    mapping: decided.mapping,
    target: decided.target,
    group: decided.group,
    decidedBy: kernel ? 'kernel' : 'desired',
    allowedSource,
    reason: reasonFor(inspection, spec, decided, allowedSource, kernel !== null && !agree),
    reply,
    steps: decided.steps,
    desired,
    kernel,
    agree,
    warnings,
    routes: null,
    routeError: null,
  }
}

function traceReport(trace: Trace): TraceReport {
  const base: TraceReport = {verdict: 'unmatched', mapping: null, target: null, masquerade: false, dropRule: null, group: null, rejectWith: null, steps: trace.steps}
  switch (trace.verdict) {
    case 'dnat':
      return {...base, verdict: 'forward', mapping: trace.mapping ?? null, target: trace.to, masquerade: trace.masqueraded, ...masqueradeTo(trace)}
    case 'group': {
      const group = {id: trace.group, members: [...trace.members], affinitySeconds: trace.affinitySeconds ?? null}
      return {...base, verdict: 'forward', mapping: trace.mapping ?? null, target: `group ${trace.group}`, masquerade: trace.masqueraded, ...masqueradeTo(trace), group}
    }
    case 'drop':
      return {...base, verdict: 'drop', dropRule: trace.rule}
    case 'reject':
      return {...base, verdict: 'reject', dropRule: trace.rule, rejectWith: trace.with}
    default:
      return base
  }
}

function masqueradeTo(trace: {masqueradedTo?: string}): {masqueradeTo?: string} {
  return trace.masqueradedTo === undefined ? {} : {masqueradeTo: trace.masqueradedTo}
}

function sameOutcome(a: TraceReport, b: TraceReport): boolean {
  return (
    a.verdict === b.verdict &&
    a.mapping === b.mapping &&
    a.target === b.target &&
    a.masquerade === b.masquerade &&
    a.masqueradeTo === b.masqueradeTo &&
    a.rejectWith === b.rejectWith &&
    // The kernel may hold a group with other members than the Service lists now (a sync not run yet).
    a.group?.members.join(',') === b.group?.members.join(',') &&
    a.group?.affinitySeconds === b.group?.affinitySeconds
  )
}

function outcome(t: TraceReport): string {
  if (t.verdict === 'forward') return `forward to ${t.target}${t.group ? ` (${t.group.members.join(', ') || 'no member'})` : ''} (${t.mapping ?? 'no Mapping named'})`
  return t.verdict
}

function allowedSourceOf(inspection: Inspection<unknown>, mapping: string | null, spec: PacketSpec): string | null {
  const model = inspection.plan.model.mappings.find((m) => `${m.namespace}/${m.name}` === mapping)
  return model?.allowedSources.find((cidr) => cidrContains(cidr, spec.src)) ?? null
}

function replyPath(inspection: Inspection<unknown>, index: number | undefined): ReplyPath | null {
  const iface = inspection.plan.model.interfaces.find((i) => i.index === index)
  if (!iface || index === undefined) return null
  let inKernel: boolean | null = null
  if (inspection.drift) {
    const where = `table ${iface.table}`
    inKernel = iface.table === undefined || !inspection.drift.missing.some((p) => (p.kind === 'ip-rule' || p.kind === 'route') && p.where === where)
  }
  return {interface: iface.name, mark: hex(interfaceMark(index)), table: iface.table ?? 'main', gateway: iface.gateway ?? null, inKernel}
}

/** One sentence a person can act on. */
function reasonFor(inspection: Inspection<unknown>, spec: PacketSpec, t: TraceReport, allowedSource: string | null, disagree: boolean): string {
  const endpoint = endpointName(spec.dst, spec.protocol, spec.port)
  const owner = ownerOf(inspection, endpoint)
  const drift = disagree ? '; the kernel differs from the desired state, run `smartnat sync` to repair it' : ''
  if (t.verdict === 'forward') {
    const via = allowedSource ? `${spec.src} is in allowedSources entry ${allowedSource} of ${t.mapping}` : `${t.mapping ?? 'a rule without a Mapping comment'} matches`
    return `${via}; DNAT to ${t.group ? groupText(t.group) : t.target}${t.masquerade ? `, masqueraded${t.masqueradeTo ? ` to ${t.masqueradeTo}` : ''}` : ''}${drift}`
  }
  if (t.verdict === 'reject') {
    const answer = t.rejectWith === 'tcp-reset' ? 'a TCP reset' : 'an ICMP port unreachable'
    const who = owner ? `${owner.id} maps ${endpoint} in mode direct, but` : `${endpoint} is mapped in mode direct, but`
    return `${who} its Service port has no ready or serving endpoint: new connections are refused with ${answer} (${t.dropRule})${drift}`
  }
  if (t.verdict === 'drop') {
    if (owner) {
      const sources = owner.allowedSources.join(', ')
      const allowed = owner.allowedSources.find((cidr) => cidrContains(cidr, spec.src))
      if (allowed) return `${spec.src} is allowed by ${allowed} of ${owner.id}, but the kernel lacks its rules and drops it${drift}`
      return `${spec.src} is not in the allowed sources of ${owner.id} (${sources}) for ${endpoint}; dropped by ${t.dropRule}${drift}`
    }
    return `dropped by ${t.dropRule}, and no desired Mapping serves ${endpoint}${drift}`
  }
  return `${whyUnmatched(inspection, spec, endpoint)}; smartnat leaves the packet to the host's other rules${drift}`
}

/** `one of the 2 endpoints of group default/web tcp/80, picked at random (ClientIP affinity 10800 s)` */
function groupText(group: GroupReport): string {
  const affinity = group.affinitySeconds === null ? '' : `, then kept for the client ${group.affinitySeconds} s (ClientIP affinity)`
  return `one of the ${group.members.length} endpoints of group ${group.id}, picked at random${affinity}`
}

function ownerOf(inspection: Inspection<unknown>, endpoint: string): {id: string; allowedSources: Cidr[]} | undefined {
  for (const m of inspection.plan.model.mappings) {
    if (m.endpoints.some((e) => endpointName(e.address, e.protocol, e.port) === endpoint)) {
      return {id: `${m.namespace}/${m.name}`, allowedSources: [...m.allowedSources]}
    }
  }
  return undefined
}

function whyUnmatched(inspection: Inspection<unknown>, spec: PacketSpec, endpoint: string): string {
  const claims = claimsOf(inspection, spec)
  const verdicts = new Map(inspection.plan.verdicts.map((v) => [`${v.namespace}/${v.name}`, v]))
  for (const id of claims) {
    const verdict = verdicts.get(id)
    if (verdict?.deleting !== undefined) return `${id} asks for ${endpoint} but is ${verdict.invalid}`
    if (verdict && !verdict.valid) return `${id} asks for ${endpoint} but is invalid: ${verdict.invalid}`
    if (verdict?.notLocalAddresses.includes(spec.dst)) {
      return `${id} asks for ${endpoint}, but ${spec.dst} is on none of this host's external interfaces`
    }
  }
  const local = inspection.host.interfaces.some((i) => i.addresses.some((a) => a.address === spec.dst))
  if (!local) return `${spec.dst} is on none of this host's external interfaces, and no Mapping maps ${endpoint}`
  const onAddress = inspection.plan.model.mappings.flatMap((m) => m.endpoints.filter((e) => e.address === spec.dst).map((e) => `${e.protocol}/${e.port}`))
  if (onAddress.length === 0) return `no Mapping uses ${spec.dst}`
  return `no Mapping maps ${spec.protocol}/${spec.port} on ${spec.dst} (mapped there: ${onAddress.join(', ')})`
}

/** Mappings whose spec, or whose allocation (status.allocated), names this address and port, read leniently since invalid ones are included. */
function claimsOf(inspection: Inspection<unknown>, spec: PacketSpec): string[] {
  return inspection.snapshot.mappings
    .filter((m) => {
      const listed: unknown = m.spec?.addresses
      const allocated = readAllocated(m.status?.allocated)
      const addresses = [...(Array.isArray(listed) ? listed : []), ...(allocated?.addresses ?? [])]
      const listedPorts: unknown = m.spec?.ports
      const ports: unknown[] = [...(Array.isArray(listedPorts) ? listedPorts : []), ...(allocated?.ports ?? [])]
      return (
        addresses.some((a) => parseIpv4(a) === spec.dst) &&
        ports.some((p) => {
          const {port, protocol} = (p ?? {}) as {port?: unknown; protocol?: unknown}
          return port === spec.port && String(protocol ?? 'tcp').toLowerCase() === spec.protocol
        })
      )
    })
    .map((m) => {
      const {namespace, name} = namesOf(m)
      return `${namespace || 'default'}/${name}`
    })
}
