/**
 * Follows the first packet of a new connection through an NftState (desired, or read back from the
 * kernel) the way netfilter would, with the iptables tracer's result shape, so `smartnat explain`
 * and the packet-flow tests read both backends alike. Rejects rule shapes the renderer does not emit.
 */
import {cidrContains, intToIpv4, ipv4ToInt, parseCidr, parseIpv4, type Ipv4} from '../../net/ipv4.js'
import {traceThroughHooks, type HookOutcome, type HookPoint, type Trace, type TracedPacket, type TracePacket, type TraceStep, type TraceTable} from '../trace-packet.js'
import {FORWARD_CHAIN, INPUT_CHAIN, MANGLE_PREROUTING_CHAIN, NAT_POSTROUTING_CHAIN, NAT_PREROUTING_CHAIN} from './names.js'
import {printRule} from './syntax.js'
import type {MaskedSource, NftChain, NftElement, NftMatch, NftSet, NftState, Selector} from './types.js'

const HOOKS: Record<HookPoint, [TraceTable, string]> = {
  'mangle PREROUTING': ['mangle', MANGLE_PREROUTING_CHAIN],
  'nat PREROUTING': ['nat', NAT_PREROUTING_CHAIN],
  'filter INPUT': ['filter', INPUT_CHAIN],
  'filter FORWARD': ['filter', FORWARD_CHAIN],
  'nat POSTROUTING': ['nat', NAT_POSTROUTING_CHAIN],
}

/** Traces a new connection's first packet through smartnat's table; throws on shapes it does not know. */
export function traceNftPacket(state: NftState, packet: TracePacket): Trace {
  return new NftTracer(state).trace(packet)
}

class NftTracer {
  private readonly chains: Map<string, NftChain>
  private readonly sets: Map<string, NftSet>
  private readonly steps: TraceStep[] = []

  constructor(state: NftState) {
    this.chains = new Map((state.table?.chains ?? []).map((chain) => [chain.name, chain]))
    this.sets = new Map((state.table?.sets ?? []).map((set) => [set.name, set]))
  }

  trace(input: TracePacket): Trace {
    return traceThroughHooks(input, (point, packet) => this.hook(point, packet), this.steps)
  }

  /** A base chain; a missing one (a table read back half-built) decides nothing. */
  private hook(point: HookPoint, packet: TracedPacket): HookOutcome {
    const [table, name] = HOOKS[point]
    return this.chains.has(name) ? this.walk(table, name, packet, 0) : {kind: 'continue'}
  }

  private walk(table: TraceTable, name: string, packet: TracedPacket, depth: number): HookOutcome {
    if (depth > 8) throw new Error(`trace: chain ${name} is nested too deeply (a goto loop?)`)
    const chain = this.chains.get(name)
    if (!chain) throw new Error(`trace: goto ${name}, which the table does not hold`)
    for (const rule of chain.rules) {
      if ('unknown' in rule) throw new Error(`trace: chain ${name} holds a rule smartnat does not render: ${rule.unknown}`)
      if (!rule.matches.every((match) => this.matches(match, packet))) continue
      const line = printRule(rule)
      const {statement} = rule
      switch (statement.kind) {
        case 'set mark': {
          this.steps.push({table, chain: name, rule: line})
          const value = ((statement.of === 'ct' ? packet.ctmark : packet.nfmark) & statement.and) | statement.or
          if (statement.of === 'ct') packet.ctmark = value >>> 0
          else packet.nfmark = value >>> 0
          break
        }
        case 'return':
          this.steps.push({table, chain: name, rule: line})
          return {kind: 'continue'}
        case 'accept':
        case 'drop':
        case 'masquerade':
          this.steps.push({table, chain: name, rule: line})
          return {kind: statement.kind === 'accept' ? 'ACCEPT' : statement.kind === 'drop' ? 'DROP' : 'MASQUERADE', rule: line}
        case 'dnat':
        case 'snat': {
          // A key missing from the map ends the rule, not the chain: nft's lookup breaks.
          const element = this.find(statement.map, statement.key, packet)
          if (!element?.value) break
          this.steps.push({table, chain: name, rule: line})
          if (statement.kind === 'snat') return {kind: 'SNAT', rule: line, to: element.value[0]!}
          return {kind: 'DNAT', rule: line, ip: parseIpv4(element.value[0])!, port: Number(element.value[1]), comment: element.comment}
        }
        case 'goto':
          this.steps.push({table, chain: name, rule: line})
          // When that chain ends, so does this one.
          return this.walk(table, statement.chain, packet, depth + 1)
        case 'vmap': {
          const mark = statement.of === 'ct' ? packet.ctmark : packet.nfmark
          const entry = statement.entries.find((e) => e.value === ((mark & statement.mask) >>> 0))
          if (!entry) break
          this.steps.push({table, chain: name, rule: line})
          // goto: when that chain ends, so does this one.
          return this.walk(table, entry.chain, packet, depth + 1)
        }
      }
    }
    return {kind: 'continue'}
  }

  private matches(match: NftMatch, packet: TracedPacket): boolean {
    switch (match.kind) {
      case 'lookup':
        return (this.find(match.set, match.key, packet) !== undefined) !== match.negate
      case 'iifname':
        return packet.inInterface === match.name
      case 'ct state':
        // Only a connection's first packet is traced: it is new, and in the original direction.
        return match.state === 'new'
      case 'ct direction':
        return match.direction === 'original'
      case 'mark': {
        const mark = match.of === 'ct' ? packet.ctmark : packet.nfmark
        return (((mark & match.mask) >>> 0) === match.value) !== match.negate
      }
    }
  }

  /** The element of a set or map whose key matches the packet, part by part (prefixes by containment). */
  private find(name: string, key: Selector[], packet: TracedPacket): NftElement | undefined {
    const set = this.sets.get(name)
    if (!set) throw new Error(`trace: rule uses set ${name}, which the table does not hold`)
    if (set.keyType.length !== key.length) throw new Error(`trace: set ${name} is keyed by ${set.keyType.join(' . ')}, not ${key.join(' . ')}`)
    const values = key.map((selector) => selected(selector, packet))
    return set.elements.find((element) => element.key.every((part, i) => partMatches(set.keyType[i]!, part, values[i]!)))
  }
}

function selected(selector: Selector, packet: TracedPacket): string {
  switch (selector) {
    case 'ip saddr':
      return packet.src
    case 'ip daddr':
      return packet.dst
    case 'meta l4proto':
      return packet.protocol
    case 'th dport':
      return String(packet.port)
    case 'iifname':
      return packet.inInterface ?? ''
    case 'oifname':
      return packet.outInterface ?? ''
    default:
      return maskedSource(selector, packet.src)
  }
}

/** The source with the host bits of `ip saddr & MASK` cleared; a mask that is not an address is a shape smartnat does not render. */
function maskedSource(selector: MaskedSource, src: Ipv4): string {
  const mask = parseIpv4(selector.slice('ip saddr & '.length))
  if (!mask) throw new Error(`trace: unknown selector ${JSON.stringify(selector)}`)
  return intToIpv4((ipv4ToInt(src) & ipv4ToInt(mask)) >>> 0)
}

function partMatches(type: string, part: string, value: string): boolean {
  if (type !== 'ipv4_addr' || !part.includes('/')) return part === value
  const prefix = parseCidr(part)
  if (!prefix.ok) throw new Error(`trace: element part ${JSON.stringify(part)}: ${prefix.reason}`)
  return cidrContains(prefix.cidr, value as Ipv4)
}
