/**
 * What the iptables and nftables tracers share: the traced packet and its marks, the result shape
 * `smartnat explain` reads, and the order in which netfilter's hooks see a new connection's first packet.
 */
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import type {Protocol} from '../mapping/types.js'
import {EGRESS_MARK, MASQUERADE_MARK, interfaceIndexOfMark} from '../net/marks.js'

export interface TracePacket {
  src: string
  dst: string
  protocol: Protocol
  port: number
  /** Interface the packet arrives on. */
  inInterface?: string
  /** Interface the host routes it out of; given, a packet that is not DNATed is forwarded instead of delivered locally. */
  outInterface?: string
}

/** The netfilter table a step belongs to, as iptables names it; the nftables tracer names its chains' hooks alike. */
export type TraceTable = 'mangle' | 'nat' | 'filter'

export interface TraceStep {
  table: TraceTable
  chain: string
  /** The rule that matched, as iptables-save or nft prints it. */
  rule: string
}

export interface TraceMarks {
  nfmark: number
  ctmark: number
  /** The packet carries the masquerade bit. */
  masquerade: boolean
  /** The connection carries the egress bit. */
  egress: boolean
  /** External interface index held in the connection mark. */
  interfaceIndex?: number
}

export type TraceVerdict =
  /** `masqueradedTo`: the fixed source a masqueraded connection gets (an HA pair's cluster-side address); absent for the interface's own. */
  | {verdict: 'dnat'; to: string; mapping?: string; masqueraded: boolean; masqueradedTo?: string}
  | {verdict: 'snat'; to: string}
  /** Mode direct: DNAT to one member of a group, picked at random (or by affinity) when the connection starts. */
  | {verdict: 'group'; group: string; members: string[]; affinitySeconds?: number; mapping?: string; masqueraded: boolean; masqueradedTo?: string}
  | {verdict: 'drop'; rule: string}
  /** Mode direct with no endpoint: refused with a TCP reset or an ICMP port unreachable. */
  | {verdict: 'reject'; rule: string; with: 'tcp-reset' | 'icmp-port-unreachable'}
  | {verdict: 'not-ours'}

export type Trace = TraceVerdict & {steps: TraceStep[]; marks: TraceMarks}

/** A packet on its way through the hooks: addresses parsed, marks as the rules set them. */
export interface TracedPacket {
  src: Ipv4
  dst: Ipv4
  protocol: Protocol
  port: number
  inInterface?: string
  outInterface?: string
  nfmark: number
  ctmark: number
}

/** What ends a walk through a hook: nothing (fall through), a verdict, or a NAT with its new address. */
export type HookOutcome =
  | {kind: 'continue'}
  | {kind: 'ACCEPT' | 'DROP' | 'MASQUERADE'; rule: string}
  | {kind: 'DNAT'; rule: string; ip: Ipv4; port: number; comment?: string}
  /** Mode direct: DNAT to one of `members` (`ip:port`), which one is the kernel's random pick. */
  | {kind: 'GROUP'; rule: string; group: string; members: string[]; affinitySeconds?: number; comment?: string}
  | {kind: 'REJECT'; rule: string; with: 'tcp-reset' | 'icmp-port-unreachable'}
  | {kind: 'SNAT'; rule: string; to: string}

/** The hooks a new connection's first packet can pass, each with the table it belongs to. */
export type HookPoint = 'mangle PREROUTING' | 'nat PREROUTING' | 'filter INPUT' | 'filter FORWARD' | 'nat POSTROUTING'

const COMMENT_MAPPING = /^(\S+\/\S+) (?:tcp|udp)\/\d+$/

/** Follows `input` through the hooks `hook` walks and reports where it ends; throws when its addresses are not IPv4. */
export function traceThroughHooks(input: TracePacket, hook: (point: HookPoint, packet: TracedPacket) => HookOutcome, steps: TraceStep[]): Trace {
  const src = parseIpv4(input.src)
  const dst = parseIpv4(input.dst)
  if (!src || !dst) throw new Error(`trace: ${JSON.stringify(input.src)} -> ${JSON.stringify(input.dst)} is not a pair of IPv4 addresses`)
  const packet: TracedPacket = {...input, src, dst, nfmark: 0, ctmark: 0}
  const verdict = route(packet, hook)
  return {...verdict, steps, marks: marksOf(packet)}
}

function route(packet: TracedPacket, hook: (point: HookPoint, packet: TracedPacket) => HookOutcome): TraceVerdict {
  // filter FORWARD, then nat POSTROUTING: what a routed packet passes on its way out.
  const forward = (): HookOutcome => {
    const filter = hook('filter FORWARD', packet)
    return filter.kind === 'DROP' ? filter : hook('nat POSTROUTING', packet)
  }
  const mangle = hook('mangle PREROUTING', packet)
  if (mangle.kind === 'DROP') return {verdict: 'drop', rule: mangle.rule}
  const nat = hook('nat PREROUTING', packet)
  if (nat.kind === 'DROP') return {verdict: 'drop', rule: nat.rule}
  if (nat.kind === 'DNAT') {
    packet.dst = nat.ip
    packet.port = nat.port
    const forwarded = forward()
    if (forwarded.kind === 'DROP') return {verdict: 'drop', rule: forwarded.rule}
    const mapping = COMMENT_MAPPING.exec(nat.comment ?? '')?.[1]
    return {verdict: 'dnat', to: `${packet.dst}:${packet.port}`, ...masquerading(forwarded), ...(mapping ? {mapping} : {})}
  }
  if (nat.kind === 'GROUP') {
    // Every member leaves by the same rules: they match marks, not the new destination.
    const forwarded = forward()
    if (forwarded.kind === 'DROP') return {verdict: 'drop', rule: forwarded.rule}
    const mapping = COMMENT_MAPPING.exec(nat.comment ?? '')?.[1]
    const {group, members, affinitySeconds} = nat
    return {verdict: 'group', group, members, ...(affinitySeconds === undefined ? {} : {affinitySeconds}), ...(mapping ? {mapping} : {}), ...masquerading(forwarded)}
  }
  if (packet.outInterface === undefined) {
    const input = hook('filter INPUT', packet)
    if (input.kind === 'REJECT') return {verdict: 'reject', rule: input.rule, with: input.with}
    return input.kind === 'DROP' ? {verdict: 'drop', rule: input.rule} : {verdict: 'not-ours'}
  }
  const forwarded = forward()
  if (forwarded.kind === 'DROP') return {verdict: 'drop', rule: forwarded.rule}
  if (forwarded.kind === 'SNAT') return {verdict: 'snat', to: forwarded.to}
  return {verdict: 'not-ours'}
}

// After a DNAT, a source NAT in POSTROUTING is the masquerade: to the interface's own address, or to a fixed one.
function masquerading(forwarded: HookOutcome): {masqueraded: boolean; masqueradedTo?: string} {
  if (forwarded.kind === 'SNAT') return {masqueraded: true, masqueradedTo: forwarded.to}
  return {masqueraded: forwarded.kind === 'MASQUERADE'}
}

function marksOf(packet: TracedPacket): TraceMarks {
  const interfaceIndex = interfaceIndexOfMark(packet.ctmark)
  return {
    nfmark: packet.nfmark,
    ctmark: packet.ctmark,
    masquerade: (packet.nfmark & MASQUERADE_MARK) !== 0,
    egress: (packet.ctmark & EGRESS_MARK) !== 0,
    ...(interfaceIndex === undefined ? {} : {interfaceIndex}),
  }
}
