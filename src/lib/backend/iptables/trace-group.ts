/**
 * Reads a mode-direct group chain and its member chains back into the group they spread
 * connections over, accepting only the exact shape groups.ts renders: a chain that picks unevenly,
 * forgets a member or DNATs elsewhere would be explained wrongly, so it is an error.
 */
import type {Protocol} from '../../mapping/types.js'
import type {Ipv4} from '../../net/ipv4.js'
import {savedProbability} from './groups.js'
import {isMemberChainName} from './names.js'
import type {Rule} from './rule.js'

export interface TracedGroup {
  /** In the order the group chain tries them. */
  members: {ip: Ipv4; port: number}[]
  affinitySeconds?: number
}

/** The members of group chain `chain` (rules of any chain from `rulesOf`); undefined for an empty group. */
export function readGroup(chain: string, rulesOf: (name: string) => Rule[], protocol: Protocol): TracedGroup | undefined {
  const rules = rulesOf(chain)
  if (rules.length === 0) return undefined
  const fail = (why: string, rule?: Rule) => new Error(`trace: group chain ${chain}: ${why}${rule ? `: ${rule.line}` : ''}`)
  const memberOf = (rule: Rule): string => {
    if (rule.target.kind !== 'jump' || !isMemberChainName(rule.target.chain)) throw fail('rule does not jump to a member chain', rule)
    return rule.target.chain
  }

  // With affinity, first one `recent --rcheck` rule per member, all with the same timeout.
  const checked: string[] = []
  let seconds: number | undefined
  let at = 0
  for (; at < rules.length; at++) {
    const rule = rules[at]!
    const [check, ...rest] = rule.matches
    if (check?.kind !== 'recent-check') break
    const member = memberOf(rule)
    if (rest.length > 0 || check.list !== member) throw fail('affinity check of another shape', rule)
    if (seconds !== undefined && check.seconds !== seconds) throw fail('members with different affinity timeouts', rule)
    seconds = check.seconds
    checked.push(member)
  }

  // Then member i of N with probability 1/(N-i), the last one without a draw.
  const spread = rules.slice(at)
  const members = spread.map((rule, i) => {
    const left = spread.length - i
    const [draw, ...rest] = rule.matches
    const even = left === 1 ? draw === undefined : draw?.kind === 'statistic' && draw.probability === savedProbability(left) && rest.length === 0
    if (!even) throw fail(`member ${i + 1} of ${spread.length} is not picked with probability 1/${left}`, rule)
    return memberOf(rule)
  })
  if (members.length === 0) throw fail('affinity checks but no member to spread over')
  if (new Set(members).size !== members.length) throw fail('a member is listed twice')
  if (seconds !== undefined && (checked.length !== members.length || checked.some((m, i) => m !== members[i]))) {
    throw fail('affinity checks do not name the members in the order they are spread over')
  }
  return {members: members.map((member) => readMember(member, rulesOf(member), protocol, seconds !== undefined, fail)), ...(seconds === undefined ? {} : {affinitySeconds: seconds})}
}

/** A member chain: with affinity `recent --set` on its own list, then the DNAT for the group's protocol. */
function readMember(chain: string, rules: Rule[], protocol: Protocol, affinity: boolean, fail: (why: string, rule?: Rule) => Error): {ip: Ipv4; port: number} {
  const [first, ...rest] = rules
  const remembers = first?.target.kind === 'none' && first.matches[0]?.kind === 'recent-set' && first.matches[0].list === chain
  if (remembers !== affinity) throw fail(`member chain ${chain} ${affinity ? 'does not record' : 'records'} the client for affinity`)
  const dnat = affinity ? rest : rules
  const [rule] = dnat
  const target = rule?.target
  const match = rule?.matches[0]
  if (dnat.length !== 1 || target?.kind !== 'DNAT' || rule!.matches.length !== 1 || match?.kind !== 'protocol') {
    throw fail(`member chain ${chain} does not end in one DNAT rule`)
  }
  if (match.protocol !== protocol) throw fail(`member chain ${chain} DNATs ${match.protocol}, not ${protocol}`, rule)
  return {ip: target.ip, port: target.port}
}
