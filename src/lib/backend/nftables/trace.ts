/**
 * Follows the first packet of a new connection through an NftState (desired, or read back from the
 * kernel) the way netfilter would, with the iptables tracer's result shape, so `smartnat explain`
 * and the packet-flow tests read both backends alike. Rejects rule shapes the renderer does not emit.
 */
import {cidrContains, intToIpv4, ipv4ToInt, parseCidr, parseIpv4, type Ipv4} from '../../net/ipv4.js'
import {traceThroughHooks, type HookOutcome, type HookPoint, type Trace, type TracedPacket, type TracePacket, type TraceStep, type TraceTable} from '../trace-packet.js'
import {FORWARD_CHAIN, INPUT_CHAIN, MANGLE_PREROUTING_CHAIN, NAT_POSTROUTING_CHAIN, NAT_PREROUTING_CHAIN} from './names.js'
import {elementParts, printRule, type ElementParts} from './syntax.js'
import type {MaskedSource, NftChain, NftMatch, NftSet, NftState, Selector} from './types.js'

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
        case 'snat to':
          this.steps.push({table, chain: name, rule: line})
          return {kind: 'SNAT', rule: line, to: statement.ip}
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
        case 'dispatch': {
          const element = this.find(statement.map, statement.key, packet)
          if (!element) break
          this.steps.push({table, chain: name, rule: line})
          const target = /^goto (\S+)$/.exec(element.value?.join(' ') ?? '')?.[1]
          if (target === undefined) throw new Error(`trace: map ${statement.map} sends ${element.key.join(' . ')} to ${JSON.stringify(element.value)}, not to a group chain`)
          // goto: a group without members ends the chain that dispatched to it, undecided.
          return this.group(table, target, packet, element.comment)
        }
        case 'reject':
          // `reject with tcp reset` carries the `meta l4proto tcp` nft folds into it.
          if (statement.with === 'tcp reset' && packet.protocol !== 'tcp') break
          this.steps.push({table, chain: name, rule: line})
          return {kind: 'REJECT', rule: line, with: statement.with === 'tcp reset' ? 'tcp-reset' : 'icmp-port-unreachable'}
        case 'pick':
        case 'numgen':
        case 'update':
        case 'dnat to':
          throw new Error(`trace: chain ${name} holds ${JSON.stringify(line)}, which smartnat renders only in a pick, group or member chain`)
      }
    }
    return {kind: 'continue'}
  }

  /**
   * A group chain: the members its random pick leads to, with their affinity. Affinity sets are
   * the kernel's (never read back), so a traced client is one the group has not seen.
   */
  private group(table: TraceTable, name: string, packet: TracedPacket, comment: string | undefined): HookOutcome {
    const chain = this.chains.get(name)
    if (!chain) throw new Error(`trace: goto ${name}, which the table does not hold`)
    const [first] = chain.rules
    if (chain.rules.length === 1 && first !== undefined && 'statement' in first && first.statement.kind === 'pick') return this.pick(table, name, packet, comment)
    if (chain.rules.length === 0) return {kind: 'continue'}
    const fail = (why: string) => new Error(`trace: group chain ${name} ${why}`)
    const rules = chain.rules.map((rule) => {
      if ('unknown' in rule) throw fail(`holds a rule smartnat does not render: ${rule.unknown}`)
      return rule
    })
    const pick = rules.at(-1)!
    if (pick.statement.kind !== 'numgen' || pick.matches.length > 0) throw fail(`does not end in a numgen pick: ${printRule(pick)}`)
    const members = pick.statement.chains
    const sticky = rules.slice(0, -1).map((rule, i) => {
      const [match] = rule.matches
      const ok = rule.matches.length === 1 && match?.kind === 'lookup' && !match.negate && match.key.join() === 'ip saddr' && rule.statement.kind === 'goto' && rule.statement.chain === members[i]
      if (!ok) throw fail(`holds ${JSON.stringify(printRule(rule))} where the affinity lookup of member ${members[i] ?? '(none)'} belongs`)
      return match.set
    })
    if (sticky.length !== 0 && sticky.length !== members.length) throw fail(`has affinity lookups for ${sticky.length} of its ${members.length} members`)
    const seconds = new Set<number | undefined>()
    const targets = members.map((member, i) => {
      const target = this.member(member, packet, sticky[i])
      seconds.add(target.affinitySeconds)
      return target.to
    })
    if (seconds.size > 1) throw fail(`keeps clients for different times: ${[...seconds].join(', ')}`)
    const [affinitySeconds] = seconds
    this.steps.push({table, chain: name, rule: printRule(pick)})
    return {kind: 'GROUP', rule: printRule(pick), group: name, members: targets, ...(affinitySeconds === undefined ? {} : {affinitySeconds}), ...(comment === undefined ? {} : {comment})}
  }

  /**
   * A pick chain: the DNAT to the member in a random slot of the packet's endpoint in `targets`.
   * The table smartnat renders holds every slot 0..N-1 of an endpoint sent there, each to a
   * different member; anything else is a table it does not render.
   */
  private pick(table: TraceTable, name: string, packet: TracedPacket, comment: string | undefined): HookOutcome {
    const rule = this.chains.get(name)!.rules[0]!
    if ('unknown' in rule || rule.statement.kind !== 'pick') throw new Error(`trace: pick chain ${name} holds a rule smartnat does not render`)
    const {statement} = rule
    const line = printRule(rule)
    const fail = (why: string) => new Error(`trace: pick chain ${name} ${why}`)
    if (rule.matches.length > 0 || statement.key.join(' . ') !== 'ip daddr . meta l4proto . th dport') throw fail(`holds ${JSON.stringify(line)}, not a pick by endpoint and slot`)
    if (name !== `pick_${statement.modulus}`) throw fail(`picks among ${statement.modulus} members`)
    const set = this.sets.get(statement.map)
    if (!set) throw new Error(`trace: rule uses set ${statement.map}, which the table does not hold`)
    if (set.keyType.join() !== 'ipv4_addr,inet_proto,inet_service,integer' || set.dataType?.join() !== 'ipv4_addr,inet_service') {
      throw fail(`looks up ${statement.map}, which is not keyed by endpoint and slot to an address and port`)
    }
    const endpoint = [packet.dst, packet.protocol, String(packet.port)]
    const slots = new Map<string, string>()
    for (const element of set.elements) {
      const {key, value} = elementParts(set, element)
      if (key.slice(0, 3).every((part, i) => part === endpoint[i])) slots.set(key[3]!, value!.join(':'))
    }
    const members: string[] = []
    for (let slot = 0; slot < statement.modulus; slot++) {
      const member = slots.get(String(slot))
      if (member === undefined) throw fail(`finds no member in slot ${slot} of ${endpoint.join(' . ')} in ${statement.map}`)
      members.push(member)
    }
    if (slots.size !== members.length) throw fail(`finds ${slots.size} members of ${endpoint.join(' . ')} in ${statement.map}, not ${members.length}`)
    if (new Set(members).size !== members.length) throw fail(`finds a member twice for ${endpoint.join(' . ')} in ${statement.map}`)
    this.steps.push({table, chain: name, rule: line})
    return {kind: 'GROUP', rule: line, group: name, members, ...(comment === undefined ? {} : {comment})}
  }

  /** A member chain: `update @SET { ip saddr }` when its group has affinity (SET being the one the group looks up), then the DNAT. */
  private member(name: string, packet: TracedPacket, affinity: string | undefined): {to: string; affinitySeconds?: number} {
    const chain = this.chains.get(name)
    if (!chain) throw new Error(`trace: goto ${name}, which the table does not hold`)
    const fail = (why: string) => new Error(`trace: member chain ${name} ${why}`)
    const rules = chain.rules.map((rule) => {
      if ('unknown' in rule) throw fail(`holds a rule smartnat does not render: ${rule.unknown}`)
      return rule
    })
    const [first, dnat] = affinity === undefined ? [undefined, rules[0]] : rules
    if (rules.length !== (affinity === undefined ? 1 : 2)) throw fail(`holds ${rules.length} rules, not ${affinity === undefined ? 'a DNAT' : 'an affinity update and a DNAT'}`)
    let affinitySeconds: number | undefined
    if (affinity !== undefined) {
      const update = first!.statement
      if (first!.matches.length > 0 || update.kind !== 'update' || update.set !== affinity || update.key.join() !== 'ip saddr') {
        throw fail(`does not begin with update @${affinity} { ip saddr }: ${printRule(first!)}`)
      }
      const set = this.sets.get(affinity)
      if (set?.timeout === undefined || !set.flags.includes('dynamic')) throw fail(`updates ${affinity}, which is not a dynamic set with a timeout in the table`)
      affinitySeconds = set.timeout
    }
    const [protocol] = dnat!.matches
    const {statement} = dnat!
    if (dnat!.matches.length !== 1 || protocol?.kind !== 'l4proto' || statement.kind !== 'dnat to') throw fail(`does not end in meta l4proto PROTOCOL dnat to IP:PORT: ${printRule(dnat!)}`)
    // The random pick may land on any member: one that would not DNAT this packet is a table smartnat does not render.
    if (protocol.protocol !== packet.protocol) throw fail(`DNATs ${protocol.protocol} only, and this packet is ${packet.protocol}`)
    return {to: `${statement.ip}:${statement.port}`, ...(affinitySeconds === undefined ? {} : {affinitySeconds})}
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
      case 'l4proto':
        return packet.protocol === match.protocol
      case 'daddr':
        return packet.dst === match.ip
    }
  }

  /** The parts of the element of a set or map whose key matches the packet, part by part (prefixes by containment). */
  private find(name: string, key: Selector[], packet: TracedPacket): ElementParts | undefined {
    const set = this.sets.get(name)
    if (!set) throw new Error(`trace: rule uses set ${name}, which the table does not hold`)
    if (set.keyType.length !== key.length) throw new Error(`trace: set ${name} is keyed by ${set.keyType.join(' . ')}, not ${key.join(' . ')}`)
    const values = key.map((selector) => selected(selector, packet))
    // Only an element that begins with the first value (or whose first part is a prefix) can match: the rest are not taken apart.
    const first = set.keyType[0] === 'ifname' ? `"${values[0]}"` : values[0]!
    for (const element of set.elements) {
      if (!element.startsWith(first) && !firstPartIsPrefix(element)) continue
      const parts = elementParts(set, element)
      if (parts.key.every((part, i) => partMatches(set.keyType[i]!, part, values[i]!))) return parts
    }
    return undefined
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

/** Whether an element's first part is an address prefix (`10.0.0.0/8`), which a packet's address matches by containment. */
function firstPartIsPrefix(element: string): boolean {
  const slash = element.indexOf('/')
  if (slash === -1) return false
  const space = element.indexOf(' ')
  return space === -1 || slash < space
}

function partMatches(type: string, part: string, value: string): boolean {
  if (type !== 'ipv4_addr' || !part.includes('/')) return part === value
  const prefix = parseCidr(part)
  if (!prefix.ok) throw new Error(`trace: element part ${JSON.stringify(part)}: ${prefix.reason}`)
  return cidrContains(prefix.cidr, value as Ipv4)
}
