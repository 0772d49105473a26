/** Which Mappings an nftables-backend state programs, named by the comments of the elements of its endpoint map and direct endpoint set. */
import {commentedMapping} from '../endpoint-comment.js'
import {DIRECT_ENDPOINTS_SET, ENDPOINTS_MAP} from './names.js'
import type {NftState} from './types.js'

/**
 * The Mappings (`namespace/name`) that have at least one element in `state`'s endpoint map (mode
 * service) or direct endpoint set (mode direct: every endpoint, also one whose group is empty and
 * so has no element in the `direct` map).
 */
export function nftMappings(state: NftState): Set<string> {
  const mappings = new Set<string>()
  for (const set of state.table?.sets ?? []) {
    if (set.name !== ENDPOINTS_MAP && set.name !== DIRECT_ENDPOINTS_SET) continue
    for (const {comment} of set.elements) {
      const mapping = commentedMapping(comment)
      if (mapping !== undefined) mappings.add(mapping)
    }
  }
  return mappings
}
