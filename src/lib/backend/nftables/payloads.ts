/** Turns nftables-backend changes into the stdin of `nft -f -`; pure. */
import {LineBuffer} from '../../net/linebuffer.js'
import type {DirectChanges, ElementChanges, TableChange} from './diff.js'
import {TABLE} from './names.js'
import {elementKey, printRule, renderNftScript, setDeclaration} from './syntax.js'
import type {NftState} from './types.js'

/** One `delete element` per stale element, then one `add element` per new one: a single transaction. */
export function elementsPayload(sets: readonly ElementChanges[]): string {
  const out = new LineBuffer()
  for (const {set, delete: stale} of sets) {
    for (const element of stale) out.write(`delete element ${TABLE} ${set.name} { ${elementKey(set, element)} }`)
  }
  for (const {set, add} of sets) {
    for (const element of add) out.write(`add element ${TABLE} ${set.name} { ${element} }`)
  }
  return out.toString()
}

/**
 * Element changes and mode direct's chains and sets in one transaction, ordered so that everything
 * a line refers to exists when it runs and nothing is deleted while a rule or element still refers
 * to it: new sets and chains are declared first, stale elements deleted, changed chains flushed and
 * filled, new elements added, and only then are the chains and sets nothing uses deleted.
 */
export function partialPayload(sets: readonly ElementChanges[], direct: DirectChanges): string {
  const out = new LineBuffer()
  for (const set of direct.addSets) out.write(`add ${setDeclaration(set).replace(/^(set|map) /, `$1 ${TABLE} `)}`)
  for (const chain of direct.addChains) out.write(`add chain ${TABLE} ${chain.name}`)
  for (const {set, delete: stale} of sets) {
    for (const element of stale) out.write(`delete element ${TABLE} ${set.name} { ${elementKey(set, element)} }`)
  }
  for (const chain of [...direct.refillChains, ...direct.deleteChains]) out.write(`flush chain ${TABLE} ${chain.name}`)
  for (const chain of [...direct.refillChains, ...direct.addChains]) {
    for (const rule of chain.rules) out.write(`add rule ${TABLE} ${chain.name} ${printRule(rule)}`)
  }
  for (const {set, add} of sets) {
    for (const element of add) out.write(`add element ${TABLE} ${set.name} { ${element} }`)
  }
  for (const chain of direct.deleteChains) out.write(`delete chain ${TABLE} ${chain.name}`)
  for (const set of direct.deleteSets) out.write(`delete set ${TABLE} ${set.name}`)
  return out.toString()
}

/** The `nft -f -` payload for a table change; empty when the table is already right. */
export function nftPayload(change: TableChange, desired: NftState): string {
  switch (change.kind) {
    case 'none':
      return ''
    case 'elements':
      return elementsPayload(change.sets)
    case 'partial':
      return partialPayload(change.sets, change)
    case 'replace':
      return renderNftScript(desired)
    case 'delete':
      // Adding first makes the deletion succeed even if the table vanished since it was read.
      return renderNftScript({ipRules: [], routes: []})
  }
}
