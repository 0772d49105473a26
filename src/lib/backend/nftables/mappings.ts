/** Which Mappings an nftables-backend state programs, named by the comments of its endpoint map's elements. */
import {ENDPOINTS_MAP} from './names.js'
import type {NftState} from './types.js'

// An endpoint element's comment is `namespace/name protocol/port`, the name cut to nft's limit.
const ENDPOINT_SUFFIX = / (?:tcp|udp)\/\d+$/

/** The Mappings (`namespace/name`) that have at least one element in `state`'s endpoint map. */
export function nftMappings(state: NftState): Set<string> {
  const mappings = new Set<string>()
  const endpoints = state.table?.sets.find((set) => set.name === ENDPOINTS_MAP)
  for (const {comment} of endpoints?.elements ?? []) {
    if (comment !== undefined && ENDPOINT_SUFFIX.test(comment)) mappings.add(comment.replace(ENDPOINT_SUFFIX, ''))
  }
  return mappings
}
