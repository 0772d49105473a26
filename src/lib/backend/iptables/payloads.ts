/** Turns a list of changes into the stdin of iptables-restore and ipset restore; pure. */
import {LineBuffer} from '../../net/linebuffer.js'
import {tempSetName} from './names.js'
import {TABLES} from './types.js'
import type {IpsetState} from './types.js'
import type {IptablesChanges, SetChanges, SetUpdate, TableChanges} from './diff.js'
import type {GoIptablesLayout, GoTableLayout} from './legacy-layout.js'

/** `-A CHAIN spec` as the same rule with another verb: `-I CHAIN position spec` (position 1 unless given) or `-D CHAIN spec`. */
function withVerb(rule: string, verb: '-I' | '-D', position = 1): string {
  if (!rule.startsWith('-A ')) throw new Error(`not a rule line as iptables-save prints it: ${JSON.stringify(rule)}`)
  if (verb === '-D') return `-D ${rule.slice(3)}`
  const space = rule.indexOf(' ', 3)
  return `-I ${rule.slice(3, space)} ${position}${rule.slice(space)}`
}

const NO_GO_LAYOUT: GoTableLayout = {chains: [], jumps: [], rules: []}

/**
 * The Go controller's part goes into the same table transaction as smartnat's: its jumps and rules
 * go as smartnat's arrive. A chain smartnat declares here is emptied by that declaration, so none of
 * the Go controller's rules in it is deleted one by one, and it is not deleted.
 */
function writeTable(out: LineBuffer, table: string, changes: TableChanges, legacy: GoTableLayout): void {
  const {writeChains, editChains, deleteChains, insertJumps, deleteJumps} = changes
  const declared = new Set(writeChains.map((c) => c.name))
  const goChains = legacy.chains.filter((name) => !declared.has(name))
  const goRules = legacy.rules.filter((rule) => !declared.has(rule.slice(3, rule.indexOf(' ', 3))))
  // A Go jump into a chain of smartnat's is a stale jump of smartnat's too (parse.ts): deleted once.
  const goJumps = legacy.jumps.filter((jump) => !deleteJumps.includes(jump))
  const edits = editChains.length + deleteChains.length + insertJumps.length + deleteJumps.length
  if (writeChains.length + edits + goChains.length + goJumps.length + goRules.length === 0) return
  out.write(`*${table}`)
  // Under --noflush, declaring a chain empties it; chains not declared keep their rules untouched.
  for (const chain of writeChains) out.write(`:${chain.name} - [0:0]`)
  for (const name of [...deleteChains, ...goChains]) out.write(`:${name} - [0:0]`)
  for (const jump of [...deleteJumps, ...goJumps, ...goRules]) out.write(withVerb(jump, '-D'))
  for (const edit of editChains) for (const rule of edit.delete) out.write(withVerb(rule, '-D'))
  for (const chain of writeChains) out.writeLines(chain.rules)
  // In ascending order, each at its place in the desired chain: the rules before it are all there by then.
  for (const edit of editChains) for (const {position, rule} of edit.insert) out.write(withVerb(rule, '-I', position))
  // Inserting at position 1 in reverse keeps the desired order among smartnat's own jumps.
  for (const jump of [...insertJumps].reverse()) out.write(withVerb(jump, '-I'))
  // A chain can only be deleted once no rule jumps to it, so this comes after the jumps are gone.
  for (const name of [...deleteChains, ...goChains]) out.write(`-X ${name}`)
  out.write('COMMIT')
}

/** The one `iptables-restore --noflush` payload for all tables, with the Go controller's layout removed too when given; empty when no table changes. */
export function iptablesRestorePayload(changes: IptablesChanges, legacy?: GoIptablesLayout): string {
  const out = new LineBuffer()
  for (const table of TABLES) writeTable(out, table, changes.tables[table], legacy?.tables[table] ?? NO_GO_LAYOUT)
  return out.toString()
}

function writeSetContent(out: LineBuffer, name: string, set: IpsetState): void {
  out.write('create', name, set.type, ...(set.options ? [set.options] : []))
  out.writeEach(['add', name], set.entries)
}

// Adding first means an allowed source that moves from one entry to another is never missing
// in between; deleting first is only needed when the set is full (see SetUpdate.deleteFirst).
function writeSetUpdate(out: LineBuffer, {set, add, del, deleteFirst}: SetUpdate): void {
  const adds = () => out.writeEach(['add', set.name], add)
  const dels = () => out.writeEach(['del', set.name], del)
  if (deleteFirst) {
    dels()
    adds()
  } else {
    adds()
    dels()
  }
}

/**
 * The `ipset restore -exist` payload that runs before iptables-restore: new sets are created,
 * sets with a few changed entries get just those added and deleted, and the other changed sets
 * are refilled under their temporary name, then swapped in. Swaps come last, so a failure while
 * filling leaves every swapped set as it was; the rollback payload undoes in-place changes.
 */
export function ipsetPreparePayload(sets: SetChanges): string {
  const out = new LineBuffer()
  // A temporary set left behind by an interrupted apply may have other options; start from nothing.
  for (const set of sets.replace) out.write('destroy', tempSetName(set.name))
  for (const set of sets.create) writeSetContent(out, set.name, set)
  for (const set of sets.replace) writeSetContent(out, tempSetName(set.name), set)
  for (const update of sets.update) writeSetUpdate(out, update)
  for (const set of sets.replace) out.write('swap', tempSetName(set.name), set.name)
  return out.toString()
}

/**
 * Undoes the prepare step: the temporary sets hold the previous contents after a swap, so swapping
 * again restores them; in-place changes are reversed (under -exist, whether or not they ran);
 * sets created for the failed apply are removed (nothing references them).
 */
export function ipsetRollbackPayload(sets: SetChanges, swapped: readonly string[]): string {
  const out = new LineBuffer()
  for (const name of swapped) out.write('swap', tempSetName(name), name)
  for (const {set, add, del} of sets.update) writeSetUpdate(out, {set, add: del, del: add, deleteFirst: true})
  for (const set of sets.replace) out.write('destroy', tempSetName(set.name))
  for (const set of sets.create) out.write('destroy', set.name)
  return out.toString()
}

/** Destroys the temporary sets (now holding old contents), stale sets and the Go controller's; runs after iptables stopped using them. */
export function ipsetCleanupPayload(sets: SetChanges, goSets: readonly string[] = []): string {
  const names = new Set([...sets.replace.map((s) => tempSetName(s.name)), ...sets.destroy, ...goSets])
  const out = new LineBuffer()
  for (const name of names) out.write('destroy', name)
  return out.toString()
}
