/** Which DNAT endpoints an apply removes or retargets, so conntrack entries still pointing at the old target can go. */
import type {ChangedEndpoint} from '../result.js'
import type {ChainState, TableState} from './types.js'
import {sameRules} from './diff.js'
import {ruleWords} from '../iptables-syntax.js'
import {ruleTarget} from './parse.js'
import {GROUP_CHAIN_PREFIX, isGroupChainName} from './names.js'

const GROUP_JUMP = ` -j ${GROUP_CHAIN_PREFIX}`

function stripHostLength(address: string): string {
  return address.endsWith('/32') ? address.slice(0, -3) : address
}

function wordAfter(words: readonly string[], flag: string): string | undefined {
  const i = words.indexOf(flag)
  return i === -1 ? undefined : words[i + 1]
}

/** Address chains are reached by `-d ADDRESS/32 -j CHAIN`: chain name -> address. */
function chainAddresses(nat: TableState): Map<string, string> {
  const addresses = new Map<string, string>()
  for (const chain of nat.chains) {
    for (const rule of chain.rules) {
      // Only dispatch rules match a destination; splitting the others into words is what costs.
      if (!rule.includes(' -d ')) continue
      const words = ruleWords(rule)
      const target = ruleTarget(words)
      const destination = wordAfter(words, '-d')
      if (target !== undefined && target !== 'DNAT' && destination !== undefined) addresses.set(target, stripHostLength(destination))
    }
  }
  return addresses
}

/** The DNAT rules and jumps to group chains of `chains` as `address protocol/port` -> target (`ip:port` or the group chain). */
function dnatTargets(chains: readonly ChainState[], chainAddress: ReadonlyMap<string, string>): Map<string, ChangedEndpoint> {
  const endpoints = new Map<string, ChangedEndpoint>()
  for (const chain of chains) {
    for (const rule of chain.rules) {
      if (!rule.includes(' DNAT ') && !rule.includes(GROUP_JUMP)) continue
      const words = ruleWords(rule)
      const target = ruleTarget(words)
      if (target !== 'DNAT' && !(target !== undefined && isGroupChainName(target))) continue
      const protocol = wordAfter(words, '-p')
      const port = Number(wordAfter(words, '--dport'))
      const destination = wordAfter(words, '-d')
      const address = destination === undefined ? chainAddress.get(words[1] ?? '') : stripHostLength(destination)
      const oldTarget = target === 'DNAT' ? wordAfter(words, '--to-destination') : target
      if ((protocol !== 'tcp' && protocol !== 'udp') || !Number.isInteger(port) || !address || !oldTarget) continue
      endpoints.set(`${address} ${protocol}/${port}`, {address, protocol, port, oldTarget})
    }
  }
  return endpoints
}

/** Where a group chain of `chains` sends connections: the DNAT target of each of its rules, each once. */
function groupTargets(chains: ReadonlyMap<string, ChainState>, group: string): string[] {
  const targets = (chains.get(group)?.rules ?? []).map((rule) => {
    const words = ruleWords(rule)
    return ruleTarget(words) === 'DNAT' ? wordAfter(words, '--to-destination') : undefined
  })
  return [...new Set(targets)].filter((to): to is string => to !== undefined)
}

/** Chains of `table` that `other` lacks, holds with other rules, or reaches at another address. */
function differingChains(table: TableState, other: TableState, addresses: Map<string, string>, otherAddresses: Map<string, string>): ChainState[] {
  const others = new Map(other.chains.map((c) => [c.name, c]))
  return table.chains.filter((chain) => {
    const counterpart = others.get(chain.name)
    return !counterpart || addresses.get(chain.name) !== otherAddresses.get(chain.name) || !sameRules(chain.rules, counterpart.rules)
  })
}

/**
 * Endpoints whose DNAT rule is gone or points elsewhere in `desired`, with the target `actual` had.
 * A chain with the same rules at the same address on both sides sends every endpoint where it did,
 * so only the rules of differing chains are read: a one-Mapping change reads one address chain.
 * In mode direct an endpoint keeps jumping to its group while the group's pods change, and a pod
 * that leaves keeps its established connections; an endpoint that leaves its group is reported
 * once per pod the group had. An endpoint that moves from a DNAT to a group (a Mapping moved to
 * mode direct) keeps its connections through the Service until they end.
 */
export function changedEndpoints(desired: TableState, actual: TableState): ChangedEndpoint[] {
  const wantedAddresses = chainAddresses(desired)
  const actualAddresses = chainAddresses(actual)
  const before = differingChains(actual, desired, actualAddresses, wantedAddresses)
  if (before.length === 0) return []
  const wanted = dnatTargets(differingChains(desired, actual, wantedAddresses, actualAddresses), wantedAddresses)
  const changed: ChangedEndpoint[] = []
  let actualChains: Map<string, ChainState> | undefined
  for (const [key, endpoint] of dnatTargets(before, actualAddresses)) {
    const now = wanted.get(key)?.oldTarget
    if (now === endpoint.oldTarget) continue
    if (!isGroupChainName(endpoint.oldTarget)) {
      if (now === undefined || !isGroupChainName(now)) changed.push(endpoint)
      continue
    }
    actualChains ??= new Map(actual.chains.map((c) => [c.name, c]))
    for (const oldTarget of groupTargets(actualChains, endpoint.oldTarget)) changed.push({...endpoint, oldTarget})
  }
  return changed
}
