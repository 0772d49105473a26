/** Which Mappings an iptables-backend state programs, named by the comments of its DNAT rules. */
import {commentedMapping} from '../endpoint-comment.js'
import type {IptablesState} from './types.js'

// A DNAT rule's comment (see endpoint-comment.ts) as iptables-save prints it: quoted, since it holds a space.
const DNAT_COMMENT = / -m comment --comment (?:"([^"]*)"|(\S+)) -j DNAT /

/** The Mappings (`namespace/name`) that have at least one DNAT rule in `state`. */
export function iptablesMappings(state: IptablesState): Set<string> {
  const mappings = new Set<string>()
  for (const chain of state.tables.nat.chains) {
    for (const line of chain.rules) {
      const match = DNAT_COMMENT.exec(line)
      const mapping = commentedMapping(match?.[1] ?? match?.[2])
      if (mapping !== undefined) mappings.add(mapping)
    }
  }
  return mappings
}
