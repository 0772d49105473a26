/**
 * Follows the first packet of a new connection through an IptablesState (desired, or read back
 * from the kernel) the way netfilter would, for `smartnat explain` and for packet-flow tests.
 */
import {cidrContains, parseCidr, parseIpv4, type Ipv4} from '../../net/ipv4.js'
import type {Protocol} from '../../mapping/types.js'
import type {IpsetState, IptablesState, TableName} from './types.js'
import {parseRule, type Match, type Rule} from './rule.js'
import {EGRESS_MARK, MASQUERADE_MARK, interfaceIndexOfMark} from './names.js'

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

export interface TraceStep {
  table: TableName
  chain: string
  /** The rule that matched, as iptables-save prints it. */
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
  | {verdict: 'dnat'; to: string; mapping?: string; masqueraded: boolean}
  | {verdict: 'snat'; to: string}
  | {verdict: 'drop'; rule: string}
  | {verdict: 'not-ours'}

export type Trace = TraceVerdict & {steps: TraceStep[]; marks: TraceMarks}

interface Packet {
  src: Ipv4
  dst: Ipv4
  protocol: Protocol
  port: number
  inInterface?: string
  outInterface?: string
  nfmark: number
  ctmark: number
}

/** What ends a walk through a table's hook: nothing (fall through), a verdict, or a NAT. */
type Outcome = {kind: 'continue'} | {kind: 'ACCEPT' | 'DROP' | 'MASQUERADE'; rule: Rule} | {kind: 'DNAT' | 'SNAT'; rule: Rule}

const COMMENT_MAPPING = /^(\S+\/\S+) (?:tcp|udp)\/\d+$/

/** Traces a new connection's first packet; throws on rule shapes the renderer does not emit. */
export function tracePacket(state: IptablesState, packet: TracePacket): Trace {
  return new Tracer(state).trace(packet)
}

class Tracer {
  private readonly rules = new Map<string, Rule[]>()
  private readonly sets: Map<string, IpsetState>
  private readonly steps: TraceStep[] = []

  constructor(private readonly state: IptablesState) {
    this.sets = new Map(state.sets.map((set) => [set.name, set]))
  }

  trace(input: TracePacket): Trace {
    const src = parseIpv4(input.src)
    const dst = parseIpv4(input.dst)
    if (!src || !dst) throw new Error(`trace: ${JSON.stringify(input.src)} -> ${JSON.stringify(input.dst)} is not a pair of IPv4 addresses`)
    const packet: Packet = {...input, src, dst, nfmark: 0, ctmark: 0}
    const verdict = this.route(packet)
    return {...verdict, steps: this.steps, marks: marksOf(packet)}
  }

  private route(packet: Packet): TraceVerdict {
    const mangle = this.hook('mangle', 'PREROUTING', packet)
    if (mangle.kind === 'DROP') return {verdict: 'drop', rule: mangle.rule.line}
    const nat = this.hook('nat', 'PREROUTING', packet)
    if (nat.kind === 'DROP') return {verdict: 'drop', rule: nat.rule.line}
    if (nat.kind === 'DNAT' && nat.rule.target.kind === 'DNAT') {
      packet.dst = nat.rule.target.ip
      packet.port = nat.rule.target.port
      const forwarded = this.forward(packet)
      if (forwarded.kind === 'DROP') return {verdict: 'drop', rule: forwarded.rule.line}
      const comment = nat.rule.matches.find((m): m is Extract<Match, {kind: 'comment'}> => m.kind === 'comment')
      const mapping = comment && COMMENT_MAPPING.exec(comment.text)?.[1]
      return {verdict: 'dnat', to: `${packet.dst}:${packet.port}`, masqueraded: forwarded.kind === 'MASQUERADE', ...(mapping ? {mapping} : {})}
    }
    if (packet.outInterface === undefined) {
      const input = this.hook('filter', 'INPUT', packet)
      return input.kind === 'DROP' ? {verdict: 'drop', rule: input.rule.line} : {verdict: 'not-ours'}
    }
    const forwarded = this.forward(packet)
    if (forwarded.kind === 'DROP') return {verdict: 'drop', rule: forwarded.rule.line}
    if (forwarded.kind === 'SNAT' && forwarded.rule.target.kind === 'SNAT') return {verdict: 'snat', to: forwarded.rule.target.ip}
    return {verdict: 'not-ours'}
  }

  /** filter FORWARD, then nat POSTROUTING: what a routed packet passes on its way out. */
  private forward(packet: Packet): Outcome {
    const filter = this.hook('filter', 'FORWARD', packet)
    if (filter.kind === 'DROP') return filter
    return this.hook('nat', 'POSTROUTING', packet)
  }

  /** A built-in chain holds only smartnat's jumps as far as the state knows. */
  private hook(table: TableName, builtin: string, packet: Packet): Outcome {
    const jumps = this.state.tables[table].jumps.filter((line) => line.startsWith(`-A ${builtin} `))
    return this.walk(table, builtin, jumps.map(parseRule), packet, 0)
  }

  private walk(table: TableName, chain: string, rules: Rule[], packet: Packet, depth: number): Outcome {
    if (depth > 8) throw new Error(`trace: chain ${table}/${chain} is nested too deeply (a jump loop?)`)
    for (const rule of rules) {
      if (rule.chain !== chain) throw new Error(`trace: rule listed under ${table}/${chain} belongs to ${rule.chain}: ${rule.line}`)
      if (!rule.matches.every((match) => this.matches(match, packet))) continue
      this.steps.push({table, chain, rule: rule.line})
      const target = rule.target
      switch (target.kind) {
        case 'jump': {
          const outcome = this.walk(table, target.chain, this.chainRules(table, target.chain), packet, depth + 1)
          if (outcome.kind !== 'continue') return outcome
          break
        }
        case 'RETURN':
          return {kind: 'continue'}
        case 'MARK':
          packet.nfmark = xmark(packet.nfmark, target.value, target.mask)
          break
        case 'CONNMARK':
          packet.ctmark = xmark(packet.ctmark, target.value, target.mask)
          break
        case 'CONNMARK-restore':
          // As xt_connmark does it: the ctmask bits of the connection mark, xor-ed into the cleared nfmask bits.
          packet.nfmark = ((packet.nfmark & ~target.nfmask) ^ (packet.ctmark & target.ctmask)) >>> 0
          break
        default:
          return {kind: target.kind, rule}
      }
    }
    return {kind: 'continue'}
  }

  private chainRules(table: TableName, name: string): Rule[] {
    const key = `${table}/${name}`
    let rules = this.rules.get(key)
    if (!rules) {
      const chain = this.state.tables[table].chains.find((c) => c.name === name)
      if (!chain) throw new Error(`trace: jump to ${name}, which table ${table} does not hold`)
      rules = chain.rules.map(parseRule)
      this.rules.set(key, rules)
    }
    return rules
  }

  private matches(match: Match, packet: Packet): boolean {
    switch (match.kind) {
      case 'dst':
        return cidrContains(match.cidr, packet.dst)
      case 'in':
        return packet.inInterface === match.iface
      case 'out':
        return packet.outInterface === match.iface
      case 'protocol':
        return packet.protocol === match.protocol
      case 'dport':
        return packet.protocol === match.protocol && packet.port === match.port
      case 'set':
        return this.inSet(match, packet) !== match.negate
      case 'mark':
        return ((packet.nfmark & match.mask) >>> 0 === match.value) !== match.negate
      case 'connmark':
        return ((packet.ctmark & match.mask) >>> 0 === match.value) !== match.negate
      case 'ctstate':
        // Only a connection's first packet is traced: it is NEW.
        return match.states.includes('NEW')
      case 'ctdir':
        return match.direction === 'ORIGINAL'
      case 'comment':
        return true
    }
  }

  private inSet(match: Extract<Match, {kind: 'set'}>, packet: Packet): boolean {
    const set = this.sets.get(match.name)
    if (!set) throw new Error(`trace: rule uses set ${match.name}, which the state does not hold`)
    const flags = match.flags.join(',')
    const pick = (flag: string | undefined) => (flag === 'src' ? packet.src : packet.dst)
    const endpoint = (address: Ipv4) => `${address},${packet.protocol}:${packet.port}`
    switch (`${set.type} ${flags}`) {
      case 'hash:ip src':
      case 'hash:ip dst':
        return set.entries.includes(pick(flags))
      case 'hash:ip,port dst,dst':
        return set.entries.includes(endpoint(packet.dst))
      case 'hash:ip,port,net dst,dst,src': {
        const prefix = `${endpoint(packet.dst)},`
        return set.entries.some((entry) => entry.startsWith(prefix) && netContains(entry.slice(prefix.length), packet.src))
      }
      default:
        throw new Error(`trace: unknown set lookup ${set.type} ${flags} in set ${set.name}`)
    }
  }
}

/** A hash:net part as `ipset save` prints it: a CIDR, or a bare address for /32. */
function netContains(net: string, address: Ipv4): boolean {
  const parsed = parseCidr(net)
  if (!parsed.ok) throw new Error(`trace: set entry net ${JSON.stringify(net)}: ${parsed.reason}`)
  return cidrContains(parsed.cidr, address)
}

/** MARK/CONNMARK --set-xmark: clear the mask bits, then flip the value bits. */
function xmark(mark: number, value: number, mask: number): number {
  return ((mark & ~mask) ^ value) >>> 0
}

function marksOf(packet: Packet): TraceMarks {
  const interfaceIndex = interfaceIndexOfMark(packet.ctmark)
  return {
    nfmark: packet.nfmark,
    ctmark: packet.ctmark,
    masquerade: (packet.nfmark & MASQUERADE_MARK) !== 0,
    egress: (packet.ctmark & EGRESS_MARK) !== 0,
    ...(interfaceIndex === undefined ? {} : {interfaceIndex}),
  }
}
