/**
 * Reads a mode-direct group chain back into the members it spreads connections over, accepting
 * only the exact shape groups.ts renders: a chain that picks unevenly, forgets a member, DNATs
 * another protocol or remembers a client on another member's list would be explained wrongly, so
 * it is an error.
 */
import type {Protocol} from '../../mapping/types.js'
import type {Ipv4} from '../../net/ipv4.js'
import {savedProbability} from './groups.js'
import type {Rule} from './rule.js'

export interface TracedGroup {
  /** In the order the group chain tries them. */
  members: {ip: Ipv4; port: number}[]
  affinitySeconds?: number
}

/** A member as one rule DNATs to it: `ip:port`, and the affinity list the rule checks or fills. */
interface MemberRule {
  member: {ip: Ipv4; port: number}
  list?: string
}

/** The members of group chain `chain` (its rules `rules`); undefined for an empty group. */
export function readGroup(chain: string, rules: Rule[], protocol: Protocol): TracedGroup | undefined {
  if (rules.length === 0) return undefined
  const fail = (why: string, rule?: Rule) => new Error(`trace: group chain ${chain}: ${why}${rule ? `: ${rule.line}` : ''}`)
  // Every rule starts with the group's protocol and DNATs; what comes between is checked below.
  const dnatOf = (rule: Rule): {ip: Ipv4; port: number} => {
    const [proto] = rule.matches
    if (rule.target.kind !== 'DNAT') throw fail('rule does not DNAT to a member', rule)
    if (proto?.kind !== 'protocol' || proto.protocol !== protocol) throw fail(`rule does not DNAT ${protocol}`, rule)
    return {ip: rule.target.ip, port: rule.target.port}
  }

  // With affinity, first one `recent --update` rule per member, all with the same timeout.
  const checked: MemberRule[] = []
  let seconds: number | undefined
  let at = 0
  for (; at < rules.length; at++) {
    const rule = rules[at]!
    const [, check, ...rest] = rule.matches
    if (check?.kind !== 'recent-update') break
    const member = dnatOf(rule)
    if (rest.length > 0) throw fail('affinity check of another shape', rule)
    if (seconds !== undefined && check.seconds !== seconds) throw fail('members with different affinity timeouts', rule)
    seconds = check.seconds
    checked.push({member, list: check.list})
  }

  // Then member i of N with probability 1/(N-i), the last one without a draw; with affinity each
  // puts the client on its list after the draw.
  const spread = rules.slice(at)
  const members = spread.map((rule, i): MemberRule => {
    const left = spread.length - i
    const [, ...extra] = rule.matches
    const member = dnatOf(rule)
    const draw = left === 1 ? undefined : extra.shift()
    if (left > 1 && (draw?.kind !== 'statistic' || draw.probability !== savedProbability(left))) {
      throw fail(`member ${i + 1} of ${spread.length} is not picked with probability 1/${left}`, rule)
    }
    const remember = extra.shift()
    if (extra.length > 0 || (remember !== undefined && remember.kind !== 'recent-set') || (remember !== undefined) !== (seconds !== undefined)) {
      throw fail(`member ${i + 1} of ${spread.length} ${seconds === undefined ? 'is not picked by one random draw' : 'is not remembered for affinity'}`, rule)
    }
    return {member, ...(remember?.kind === 'recent-set' ? {list: remember.list} : {})}
  })
  if (members.length === 0) throw fail('affinity checks but no member to spread over')
  const key = (m: MemberRule) => `${m.member.ip}:${m.member.port} ${m.list ?? ''}`
  if (new Set(members.map((m) => `${m.member.ip}:${m.member.port}`)).size !== members.length) throw fail('a member is listed twice')
  if (new Set(members.map((m) => m.list)).size !== members.length && seconds !== undefined) throw fail('two members share an affinity list')
  if (seconds !== undefined && (checked.length !== members.length || checked.some((m, i) => key(m) !== key(members[i]!)))) {
    throw fail('affinity checks do not name the members and lists in the order they are spread over')
  }
  return {members: members.map((m) => m.member), ...(seconds === undefined ? {} : {affinitySeconds: seconds})}
}
