/** Which Mappings an iptables-backend state programs, named by the comments of its DNAT rules. */
import type {IptablesState} from './types.js'

// A DNAT rule's comment is `namespace/name protocol/port` (the name cut to iptables' limit), as
// iptables-save prints it: quoted, since it holds a space.
const DNAT_COMMENT = / -m comment --comment (?:"([^"]*)"|(\S+)) -j DNAT /
const ENDPOINT_SUFFIX = / (?:tcp|udp)\/\d+$/

/** The Mappings (`namespace/name`) that have at least one DNAT rule in `state`. */
export function iptablesMappings(state: IptablesState): Set<string> {
  const mappings = new Set<string>()
  for (const chain of state.tables.nat.chains) {
    for (const line of chain.rules) {
      const match = DNAT_COMMENT.exec(line)
      const comment = match?.[1] ?? match?.[2]
      if (comment !== undefined && ENDPOINT_SUFFIX.test(comment)) mappings.add(comment.replace(ENDPOINT_SUFFIX, ''))
    }
  }
  return mappings
}
