/** Which Mappings an iptables-backend state programs, named by the comments of their DNAT rules and jumps to group chains. */
import {commentedMapping} from '../endpoint-comment.js'
import type {IptablesState} from './types.js'
import {GROUP_CHAIN_PREFIX} from './names.js'
import {renderedSummary} from './summary.js'

// A DNAT rule's comment (see endpoint-comment.ts) as iptables-save prints it: quoted, since it holds a space.
// In mode direct the endpoint's rule jumps to its group's chain instead.
const DNAT_COMMENT = new RegExp(` -m comment --comment (?:"([^"]*)"|(\\S+)) -j (?:DNAT |${GROUP_CHAIN_PREFIX})`)

/** The Mappings (`namespace/name`) that have at least one DNAT rule or group jump in `state`. */
export function iptablesMappings(state: IptablesState): Set<string> {
  const summary = renderedSummary(state)
  if (summary) return summary.mappings()
  const mappings = new Set<string>()
  for (const chain of state.tables.nat.chains) for (const mapping of commentedMappings(chain.rules)) mappings.add(mapping)
  return mappings
}

/** The Mappings the DNAT rules and group jumps among `rules` name, each once. */
export function commentedMappings(rules: readonly string[]): string[] {
  const mappings = new Set<string>()
  for (const line of rules) {
    const match = DNAT_COMMENT.exec(line)
    const mapping = commentedMapping(match?.[1] ?? match?.[2])
    if (mapping !== undefined) mappings.add(mapping)
  }
  return [...mappings]
}
