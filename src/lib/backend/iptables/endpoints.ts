/** Which DNAT endpoints an apply removes or retargets, so conntrack entries still pointing at the old target can go. */
import type {ChangedEndpoint} from '../result.js'
import type {TableState} from './types.js'
import {ruleTarget, ruleWords} from './parse.js'

function stripHostLength(address: string): string {
  return address.endsWith('/32') ? address.slice(0, -3) : address
}

function wordAfter(words: readonly string[], flag: string): string | undefined {
  const i = words.indexOf(flag)
  return i === -1 ? undefined : words[i + 1]
}

/** Every DNAT rule of the nat table as `address protocol/port` -> target. */
function dnatTargets(nat: TableState): Map<string, ChangedEndpoint> {
  const rules = nat.chains.flatMap((chain) => chain.rules.map((rule) => ruleWords(rule)))
  // Address chains are reached by `-d ADDRESS/32 -j CHAIN`; their DNAT rules match only the port.
  const chainAddress = new Map<string, string>()
  for (const words of rules) {
    const target = ruleTarget(words)
    const destination = wordAfter(words, '-d')
    if (target !== undefined && target !== 'DNAT' && destination !== undefined) chainAddress.set(target, stripHostLength(destination))
  }
  const endpoints = new Map<string, ChangedEndpoint>()
  for (const words of rules) {
    if (ruleTarget(words) !== 'DNAT') continue
    const protocol = wordAfter(words, '-p')
    const port = Number(wordAfter(words, '--dport'))
    const destination = wordAfter(words, '-d')
    const address = destination === undefined ? chainAddress.get(words[1] ?? '') : stripHostLength(destination)
    const oldTarget = wordAfter(words, '--to-destination')
    if ((protocol !== 'tcp' && protocol !== 'udp') || !Number.isInteger(port) || !address || !oldTarget) continue
    endpoints.set(`${address} ${protocol}/${port}`, {address, protocol, port, oldTarget})
  }
  return endpoints
}

/** Endpoints whose DNAT rule is gone or points elsewhere in `desired`, with the target `actual` had. */
export function changedEndpoints(desired: TableState, actual: TableState): ChangedEndpoint[] {
  const wanted = dnatTargets(desired)
  return [...dnatTargets(actual)]
    .filter(([key, endpoint]) => wanted.get(key)?.oldTarget !== endpoint.oldTarget)
    .map(([, endpoint]) => endpoint)
}
