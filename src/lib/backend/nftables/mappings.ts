/** Which Mappings an nftables-backend state programs, named by the comments of its endpoint map's elements. */
import {commentedMapping} from '../endpoint-comment.js'
import {ENDPOINTS_MAP} from './names.js'
import type {NftState} from './types.js'

/** The Mappings (`namespace/name`) that have at least one element in `state`'s endpoint map. */
export function nftMappings(state: NftState): Set<string> {
  const mappings = new Set<string>()
  const endpoints = state.table?.sets.find((set) => set.name === ENDPOINTS_MAP)
  for (const {comment} of endpoints?.elements ?? []) {
    const mapping = commentedMapping(comment)
    if (mapping !== undefined) mappings.add(mapping)
  }
  return mappings
}
