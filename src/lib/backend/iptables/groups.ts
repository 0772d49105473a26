/**
 * Mode direct in the iptables backend (docs/kernel-layout.md, "Mode direct"): one nat chain per
 * endpoint group that spreads new connections with `statistic --mode random` (after `recent`
 * checks for affinity) and DNATs to the member picked, without a chain per member: iptables-restore
 * slows down superlinearly with the number of chains. Rules in the exact form iptables-save prints them.
 */
import type {NatGroup, NatGroupMember, NatMapping} from '../../plan/model.js'
import type {Protocol} from '../../mapping/types.js'
import type {ChainState} from './types.js'
import {affinityListName, groupChainName} from './names.js'

/** How `recent` keys its lists, as iptables-save prints the default: by the whole source address. */
const RECENT_SOURCE = '--mask 255.255.255.255 --rsource'

/** xt_statistic keeps a probability as a 31-bit fraction: `lround(p * 2^31)`. */
const PROBABILITY_ONE = 0x80000000

/** Groups are small: the probabilities of a few sizes serve every group chain of every pass. */
const probabilities = new Map<number, string>()

/**
 * The probability `1/n` as iptables-save prints it: the kernel's 31-bit fraction written with 11
 * decimals (`printf("%.11f")`, whose exact ties round to even), so 1/3 reads back as 0.33333333349.
 */
export function savedProbability(n: number): string {
  let text = probabilities.get(n)
  if (text === undefined) probabilities.set(n, (text = printedProbability(n)))
  return text
}

function printedProbability(n: number): string {
  const fraction = BigInt(Math.round(PROBABILITY_ONE / n))
  const scaled = fraction * 10n ** 11n
  const denominator = BigInt(PROBABILITY_ONE)
  let digits = scaled / denominator
  const twice = 2n * (scaled % denominator)
  if (twice > denominator || (twice === denominator && digits % 2n === 1n)) digits++
  const text = digits.toString().padStart(12, '0')
  return `${text.slice(0, -11)}.${text.slice(-11)}`
}

/** A group as rendered: its chain, and the protocol its members are DNATed for. */
interface RenderedGroup {
  group: NatGroup
  protocol: Protocol
  /** The Mapping it belongs to, for error messages. */
  owner: NatMapping
  chain: ChainState
}

/**
 * Collects the groups the direct endpoints lead to, each once however many endpoints share it.
 * Fails when one id stands for two different groups, or for one group under two protocols or
 * Mappings: their chains would overwrite each other; also when a group lists a member twice.
 */
export class GroupChains {
  private readonly groups = new Map<string, RenderedGroup>()
  private readonly names = new Map<string, string>()

  /** The group chain `group` is reached through, rendering it the first time. */
  chainFor(mapping: NatMapping, protocol: Protocol, group: NatGroup): ChainState {
    const seen = this.groups.get(group.id)
    if (seen) {
      if (seen.owner !== mapping || seen.protocol !== protocol || !sameGroup(seen.group, group)) {
        throw new Error(
          `mapping ${mapping.namespace}/${mapping.name}: endpoint group ${JSON.stringify(group.id)} differs from the group of that id in mapping ${seen.owner.namespace}/${seen.owner.name}`,
        )
      }
      return seen.chain
    }
    if (new Set(group.members.map((m) => `${m.ip}:${m.port}`)).size !== group.members.length) {
      throw new Error(`mapping ${mapping.namespace}/${mapping.name}: endpoint group ${JSON.stringify(group.id)} lists a member twice`)
    }
    const chain = groupChain(group, protocol)
    this.claim(chain.name, group.id, mapping)
    if (group.affinitySeconds !== undefined) for (const member of group.members) this.claim(affinityListName(group.id, member), group.id, mapping)
    this.groups.set(group.id, {group, protocol, owner: mapping, chain})
    return chain
  }

  /** Group chains in the order groups were first reached. */
  chains(): ChainState[] {
    return [...this.groups.values()].map((g) => g.chain)
  }

  /** Every chain and affinity list name the groups take. */
  claimedNames(): string[] {
    return [...this.names.keys()]
  }

  private claim(name: string, groupId: string, mapping: NatMapping): void {
    const other = this.names.get(name)
    if (other !== undefined) {
      throw new Error(`mapping ${mapping.namespace}/${mapping.name}: endpoint group ${JSON.stringify(groupId)} hashes to name ${name}, as does group ${JSON.stringify(other)}`)
    }
    this.names.set(name, groupId)
  }
}

function sameGroup(a: NatGroup, b: NatGroup): boolean {
  return (
    a.affinitySeconds === b.affinitySeconds &&
    a.members.length === b.members.length &&
    a.members.every((m, i) => m.ip === b.members[i]!.ip && m.port === b.members[i]!.port)
  )
}

/**
 * The group chain. A member is picked with probability 1/(N-i) among those left, the last one
 * unconditionally: an even spread with one random draw per rule passed. With affinity, a client
 * the `recent` list of a member saw within the timeout goes back to it first (`--update` also
 * refreshes the time, as a new connection does in kube-proxy), and the rule that picks a member
 * puts the client on its list: `statistic` before `recent --set`, so only the draw that wins
 * records. Every rule names the protocol: a DNAT to a port needs it. An empty group has no rules:
 * the packet returns undisturbed and SNM-INPUT refuses it.
 */
function groupChain(group: NatGroup, protocol: Protocol): ChainState {
  const name = groupChainName(group.id)
  const affinity = group.affinitySeconds
  const lists = group.members.map((member) => (affinity === undefined ? undefined : affinityListName(group.id, member)))
  const dnat = (member: NatGroupMember) => `-j DNAT --to-destination ${member.ip}:${member.port}`
  const rules: string[] = []
  if (affinity !== undefined) {
    group.members.forEach((member, i) => {
      rules.push(`-A ${name} -p ${protocol} -m recent --update --seconds ${affinity} --reap --name ${lists[i]} ${RECENT_SOURCE} ${dnat(member)}`)
    })
  }
  group.members.forEach((member, i) => {
    const left = group.members.length - i
    const draw = left === 1 ? '' : ` -m statistic --mode random --probability ${savedProbability(left)}`
    const remember = lists[i] === undefined ? '' : ` -m recent --set --name ${lists[i]} ${RECENT_SOURCE}`
    rules.push(`-A ${name} -p ${protocol}${draw}${remember} ${dnat(member)}`)
  })
  return {name, rules}
}
