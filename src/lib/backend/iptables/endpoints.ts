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

/** The DNAT rules of `chains` (with `groups`, the jumps to group chains too) as `address protocol/port` -> target. */
function dnatTargets(chains: readonly ChainState[], chainAddress: ReadonlyMap<string, string>, groups = false): Map<string, ChangedEndpoint> {
  const endpoints = new Map<string, ChangedEndpoint>()
  for (const chain of chains) {
    for (const rule of chain.rules) {
      if (!rule.includes(' DNAT ') && !(groups && rule.includes(GROUP_JUMP))) continue
      const words = ruleWords(rule)
      const target = ruleTarget(words)
      if (target !== 'DNAT' && !(groups && target !== undefined && isGroupChainName(target))) continue
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
 * An endpoint that now leads to a group (a Mapping moved to mode direct) keeps its connections,
 * as a pod leaving a group does: established ones end on their own.
 */
export function changedEndpoints(desired: TableState, actual: TableState): ChangedEndpoint[] {
  const wantedAddresses = chainAddresses(desired)
  const actualAddresses = chainAddresses(actual)
  const before = differingChains(actual, desired, actualAddresses, wantedAddresses)
  if (before.length === 0) return []
  const wanted = dnatTargets(differingChains(desired, actual, wantedAddresses, actualAddresses), wantedAddresses, true)
  return [...dnatTargets(before, actualAddresses)]
    .filter(([key, endpoint]) => {
      const now = wanted.get(key)?.oldTarget
      return now !== endpoint.oldTarget && !(now !== undefined && isGroupChainName(now))
    })
    .map(([, endpoint]) => endpoint)
}
