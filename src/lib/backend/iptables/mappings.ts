/** Which Mappings an iptables-backend state programs, named by the comments of their DNAT rules and jumps to group chains. */
import {commentedMapping} from '../endpoint-comment.js'
import type {IptablesState} from './types.js'
import {GROUP_CHAIN_PREFIX} from './names.js'

// A DNAT rule's comment (see endpoint-comment.ts) as iptables-save prints it: quoted, since it holds a space.
// In mode direct the endpoint's rule jumps to its group's chain instead.
const DNAT_COMMENT = new RegExp(` -m comment --comment (?:"([^"]*)"|(\\S+)) -j (?:DNAT |${GROUP_CHAIN_PREFIX})`)

/** The Mappings each chain names, kept per chain: a state rendered from the last keeps most of its chains. */
const chainMappings = new WeakMap<readonly string[], readonly string[]>()

/** The Mappings (`namespace/name`) that have at least one DNAT rule or group jump in `state`. */
export function iptablesMappings(state: IptablesState): Set<string> {
  const mappings = new Set<string>()
  for (const chain of state.tables.nat.chains) {
    for (const mapping of mappingsOf(chain.rules)) mappings.add(mapping)
  }
  return mappings
}

function mappingsOf(rules: readonly string[]): readonly string[] {
  let found = chainMappings.get(rules)
  if (found !== undefined) return found
  const mappings = new Set<string>()
  for (const line of rules) {
    const match = DNAT_COMMENT.exec(line)
    const mapping = commentedMapping(match?.[1] ?? match?.[2])
    if (mapping !== undefined) mappings.add(mapping)
  }
  chainMappings.set(rules, (found = [...mappings]))
  return found
}
