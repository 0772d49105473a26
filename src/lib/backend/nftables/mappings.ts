/** Which Mappings an nftables-backend state programs, named by the comments of its endpoint and direct maps' elements. */
import {commentedMapping} from '../endpoint-comment.js'
import {DIRECT_MAP, ENDPOINTS_MAP} from './names.js'
import type {NftState} from './types.js'

/** The Mappings (`namespace/name`) that have at least one element in `state`'s endpoint map (mode service) or direct map (mode direct). */
export function nftMappings(state: NftState): Set<string> {
  const mappings = new Set<string>()
  for (const set of state.table?.sets ?? []) {
    if (set.name !== ENDPOINTS_MAP && set.name !== DIRECT_MAP) continue
    for (const {comment} of set.elements) {
      const mapping = commentedMapping(comment)
      if (mapping !== undefined) mappings.add(mapping)
    }
  }
  return mappings
}
