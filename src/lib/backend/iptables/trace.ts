/**
 * Follows the first packet of a new connection through an IptablesState (desired, or read back
 * from the kernel) the way netfilter would, for `smartnat explain` and for packet-flow tests.
 */
import {cidrContains, parseCidr, type Ipv4} from '../../net/ipv4.js'
import {traceThroughHooks, type HookOutcome, type HookPoint, type Trace, type TracedPacket, type TracePacket, type TraceStep} from '../trace-packet.js'
import type {IpsetState, IptablesState, TableName} from './types.js'
import {parseRule, type Match, type Rule} from './rule.js'
import {readGroup} from './trace-group.js'
import {isGroupChainName} from './names.js'

const HOOKS: Record<HookPoint, [TableName, string]> = {
  'mangle PREROUTING': ['mangle', 'PREROUTING'],
  'nat PREROUTING': ['nat', 'PREROUTING'],
  'filter INPUT': ['filter', 'INPUT'],
  'filter FORWARD': ['filter', 'FORWARD'],
  'nat POSTROUTING': ['nat', 'POSTROUTING'],
}

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
    return traceThroughHooks(input, (point, packet) => this.hook(point, packet), this.steps)
  }

  /** A built-in chain holds only smartnat's jumps as far as the state knows. */
  private hook(point: HookPoint, packet: TracedPacket): HookOutcome {
    const [table, builtin] = HOOKS[point]
    const jumps = this.state.tables[table].jumps.filter((line) => line.startsWith(`-A ${builtin} `))
    return this.walk(table, builtin, jumps.map(parseRule), packet, 0)
  }

  private walk(table: TableName, chain: string, rules: Rule[], packet: TracedPacket, depth: number): HookOutcome {
    if (depth > 8) throw new Error(`trace: chain ${table}/${chain} is nested too deeply (a jump loop?)`)
    for (const rule of rules) {
      if (rule.chain !== chain) throw new Error(`trace: rule listed under ${table}/${chain} belongs to ${rule.chain}: ${rule.line}`)
      if (!rule.matches.every((match) => this.matches(match, packet))) continue
      this.steps.push({table, chain, rule: rule.line})
      const target = rule.target
      switch (target.kind) {
        case 'jump': {
          const outcome = isGroupChainName(target.chain)
            ? this.group(table, rule, target.chain, packet)
            : this.walk(table, target.chain, this.chainRules(table, target.chain), packet, depth + 1)
          if (outcome.kind !== 'continue') return outcome
          break
        }
        case 'REJECT':
          return {kind: 'REJECT', rule: rule.line, with: target.with}
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
        case 'DNAT': {
          const comment = rule.matches.find((m): m is Extract<Match, {kind: 'comment'}> => m.kind === 'comment')
          return {kind: 'DNAT', rule: rule.line, ip: target.ip, port: target.port, ...(comment ? {comment: comment.text} : {})}
        }
        case 'SNAT':
          return {kind: 'SNAT', rule: rule.line, to: target.ip}
        default:
          return {kind: target.kind, rule: rule.line}
      }
    }
    return {kind: 'continue'}
  }

  /** A group chain is read as a whole: which member a connection gets is the kernel's random pick. */
  private group(table: TableName, jump: Rule, chain: string, packet: TracedPacket): HookOutcome {
    const group = readGroup(chain, this.chainRules(table, chain), packet.protocol)
    // An empty group sends the packet on, undisturbed, to be refused in INPUT.
    if (group === undefined) return {kind: 'continue'}
    const comment = jump.matches.find((m): m is Extract<Match, {kind: 'comment'}> => m.kind === 'comment')
    const members = group.members.map((m) => `${m.ip}:${m.port}`)
    const affinity = group.affinitySeconds === undefined ? {} : {affinitySeconds: group.affinitySeconds}
    return {kind: 'GROUP', rule: jump.line, group: chain, members, ...affinity, ...(comment ? {comment: comment.text} : {})}
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

  private matches(match: Match, packet: TracedPacket): boolean {
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
      case 'statistic':
      case 'recent-update':
      case 'recent-set':
        throw new Error(`trace: ${match.kind} match outside the group chain it belongs to: only a group chain may pick at random`)
    }
  }

  private inSet(match: Extract<Match, {kind: 'set'}>, packet: TracedPacket): boolean {
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
