/** Turns nftables-backend changes into the stdin of `nft -f -`; pure. */
import {LineBuffer} from '../../net/linebuffer.js'
import type {ElementChanges, TableChange} from './diff.js'
import {TABLE} from './names.js'
import {elementKey, printElement, renderNftScript} from './syntax.js'
import type {NftState} from './types.js'

/** One `delete element` per stale element, then one `add element` per new one: a single transaction. */
export function elementsPayload(sets: readonly ElementChanges[]): string {
  const out = new LineBuffer()
  for (const {set, delete: stale} of sets) {
    for (const element of stale) out.write(`delete element ${TABLE} ${set.name} { ${elementKey(set, element)} }`)
  }
  for (const {set, add} of sets) {
    for (const element of add) out.write(`add element ${TABLE} ${set.name} { ${printElement(set, element)} }`)
  }
  return out.toString()
}

/** The `nft -f -` payload for a table change; empty when the table is already right. */
export function nftPayload(change: TableChange, desired: NftState): string {
  switch (change.kind) {
    case 'none':
      return ''
    case 'elements':
      return elementsPayload(change.sets)
    case 'replace':
      return renderNftScript(desired)
    case 'delete':
      // Adding first makes the deletion succeed even if the table vanished since it was read.
      return renderNftScript({ipRules: [], routes: []})
  }
}
