/** Which Mappings an nftables-backend state programs, named by the comments of the elements of its endpoint map and direct endpoint set. */
import {commentedMapping} from '../endpoint-comment.js'
import {DIRECT_ENDPOINTS_SET, ENDPOINTS_MAP} from './names.js'
import {elementComment, type ElementTypes} from './syntax.js'
import type {NftElement, NftState} from './types.js'

/**
 * The Mappings (`namespace/name`) that have at least one element in `state`'s endpoint map (mode
 * service) or direct endpoint set (mode direct: every endpoint, also one whose group is empty and
 * so has no element in the `direct` map).
 */
export function nftMappings(state: NftState): Set<string> {
  const told = renderedMappings.get(state)
  if (told) return told()
  const mappings = new Set<string>()
  for (const set of state.table?.sets ?? []) {
    if (set.name !== ENDPOINTS_MAP && set.name !== DIRECT_ENDPOINTS_SET) continue
    for (const mapping of commentedMappings(set, set.elements)) mappings.add(mapping)
  }
  return mappings
}

/** The Mappings the comments of `elements` (of a set of these types) name, each once. */
export function commentedMappings(types: ElementTypes, elements: readonly NftElement[]): string[] {
  const mappings = new Set<string>()
  for (const element of elements) {
    const mapping = commentedMapping(elementComment(types, element))
    if (mapping !== undefined) mappings.add(mapping)
  }
  return [...mappings]
}

const renderedMappings = new WeakMap<NftState, () => Set<string>>()

/**
 * Records how to tell the Mappings of a state the renderer assembled from parts (as nftMappings reads
 * them from its elements) without reading 20,000 comments again.
 */
export function rememberMappings(state: NftState, mappings: () => Set<string>): void {
  renderedMappings.set(state, mappings)
}
