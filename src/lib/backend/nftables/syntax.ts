/** Prints the nftables backend's rules, elements and table in nft's own syntax; pure. */
import {LineBuffer} from '../../net/linebuffer.js'
import {markHex} from '../../net/marks.js'
import {stringEnd} from './json-items.js'
import {TABLE} from './names.js'
import type {NftChain, NftElement, NftMatch, NftRule, NftSet, NftState, NftStatement} from './types.js'

/** Every bit: a `& AND` that keeps them all is left out, as nft does. */
const ALL_BITS = 0xffffffff

function printMatch(match: NftMatch): string {
  switch (match.kind) {
    case 'lookup':
      return `${match.key.join(' . ')} ${match.negate ? '!= ' : ''}@${match.set}`
    case 'iifname':
      return `iifname ${quoted(match.name)}`
    case 'ct state':
      return `ct state ${match.state}`
    case 'ct direction':
      return `ct direction ${match.direction}`
    case 'mark':
      return `${match.of} mark & ${markHex(match.mask)} ${match.negate ? '!=' : '=='} ${markHex(match.value)}`
    case 'l4proto':
      return `meta l4proto ${match.protocol}`
    case 'daddr':
      return `ip daddr ${match.ip}`
  }
}

function printStatement(statement: NftStatement): string {
  switch (statement.kind) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'masquerade':
      return statement.kind
    case 'set mark': {
      const kept = (statement.and >>> 0) === ALL_BITS ? '' : ` & ${markHex(statement.and)}`
      return `${statement.of} mark set ${statement.of} mark${kept} | ${markHex(statement.or)}`
    }
    case 'dnat':
    case 'snat':
      return `${statement.kind} to ${statement.key.join(' . ')} map @${statement.map}`
    case 'goto':
      return `goto ${statement.chain}`
    case 'vmap': {
      const entries = statement.entries.map((e) => `${markHex(e.value)} : goto ${e.chain}`).join(', ')
      return `${statement.of} mark & ${markHex(statement.mask)} vmap { ${entries} }`
    }
    case 'dispatch':
      return `${statement.key.join(' . ')} vmap @${statement.map}`
    case 'pick':
      return `dnat to ${statement.key.join(' . ')} . numgen random mod ${statement.modulus} map @${statement.map}`
    case 'numgen': {
      const entries = statement.chains.map((chain, i) => `${i} : goto ${chain}`).join(', ')
      return `numgen random mod ${statement.chains.length} vmap { ${entries} }`
    }
    case 'update':
      return `update @${statement.set} { ${statement.key.join(' . ')} }`
    case 'dnat to':
      return `dnat to ${statement.ip}:${statement.port}`
    case 'snat to':
      return `snat to ${statement.ip}`
    case 'reject':
      // Without the protocol written first, nft would make `th dport` of the rule's lookup `tcp dport`.
      return statement.with === 'tcp reset' ? 'meta l4proto tcp reject with tcp reset' : 'reject'
  }
}

/** One rule as a line of nft syntax; a rule of unknown shape prints as the JSON nft gave. */
export function printRule(rule: NftRule): string {
  if ('unknown' in rule) return `# unknown rule ${rule.unknown}`
  return [...rule.matches.map(printMatch), printStatement(rule.statement)].join(' ')
}

const UNQUOTABLE = /["\\\r\n]/

/** A string as an nft quoted string; callers pass only validated names, so a quote is a bug. */
export function quoted(text: string): string {
  if (UNQUOTABLE.test(text)) throw new Error(`cannot quote ${JSON.stringify(text)} for nft`)
  return `"${text}"`
}

const COMMENT = ' comment "'
const VALUE = ' : '
const SEPARATOR = ' . '

/** Pushes the parts of a key or value onto `pieces`, with ` . ` between them. */
function printParts(pieces: string[], parts: readonly string[], types: readonly string[]): void {
  for (let i = 0; i < parts.length; i++) {
    if (i > 0) pieces.push(SEPARATOR)
    pieces.push(types[i] === 'ifname' ? quoted(parts[i]!) : parts[i]!)
  }
}

/** What an element is made of, each part as nft prints it. */
export interface ElementParts {
  /** One part per key type: `198.18.0.10`, `tcp`, `80`, `10.0.0.0/8` (a /32 bare), `eth1` (unquoted). */
  key: readonly string[]
  /** Map data, one part per data type; absent in plain sets. */
  value?: readonly string[]
  comment?: string
}

/** The types an element of a set or map is printed with. */
export type ElementTypes = Pick<NftSet, 'keyType' | 'dataType'>

/**
 * An element of a set or map of `types` as written inside `{ }`: key, comment, then `: value` for
 * maps. With `read` (an element read back from the kernel), a comment nft's syntax cannot quote is
 * kept JSON-escaped, which no rendered comment can equal (they hold no quote or backslash): the diff
 * replaces the element instead of the read failing.
 */
export function printElement(types: ElementTypes, {key, value, comment}: ElementParts, read = false): NftElement {
  const pieces: string[] = []
  printParts(pieces, key, types.keyType)
  if (comment !== undefined) pieces.push(' comment ', read && UNQUOTABLE.test(comment) ? JSON.stringify(comment) : quoted(comment))
  if (value !== undefined) {
    pieces.push(VALUE)
    printParts(pieces, value, types.dataType ?? [])
  }
  // Joined, not added up: a string added from pieces is a tree of them, and reading a character
  // copies it flat but leaves the tree's root (32 bytes) in front of the copy for as long as it is
  // kept (20,000 endpoint elements at 10,000 Mappings); a join writes one flat string at once.
  return pieces.join('')
}

/** Where the key of `element` ends: after one part per key type, a quoted one ending at its closing quote. */
function keyEnd(types: ElementTypes, element: NftElement): number {
  let at = 0
  for (let part = 0; part < types.keyType.length; part++) {
    if (part > 0) at += SEPARATOR.length
    if (element.charCodeAt(at) === QUOTE) at = element.indexOf('"', at + 1) + 1
    else {
      const space = element.indexOf(' ', at)
      at = space === -1 ? element.length : space
    }
  }
  return at
}

/** The key of an element as nft prints it, which is also how elements are told apart. */
export function elementKey(types: ElementTypes, element: NftElement): string {
  const end = keyEnd(types, element)
  return end === element.length ? element : element.slice(0, end)
}

/** The parts of an element: what the tracer, explain and the diff's endpoint report read. */
export function elementParts(types: ElementTypes, element: NftElement): ElementParts {
  const end = keyEnd(types, element)
  const parts: ElementParts = {key: splitParts(element.slice(0, end), types.keyType.length)}
  const comment = commentAt(element, end)
  if (comment) parts.comment = comment.text
  const at = comment?.end ?? end
  if (element.startsWith(VALUE, at)) parts.value = splitParts(element.slice(at + VALUE.length), types.dataType?.length ?? 1)
  return parts
}

/** The comment of an element, if it has one. */
export function elementComment(types: ElementTypes, element: NftElement): string | undefined {
  return commentAt(element, keyEnd(types, element))?.text
}

/** The comment that begins at `at`, right after the key, and where it ends; undefined when none does. */
function commentAt(element: NftElement, at: number): {text: string; end: number} | undefined {
  if (!element.startsWith(COMMENT, at)) return undefined
  const open = at + COMMENT.length - 1
  const close = stringEnd(element, open)
  const inner = element.slice(open + 1, close)
  // A comment read back that nft's syntax could not quote was JSON-escaped (printElement).
  return {text: inner.includes('\\') ? (JSON.parse(element.slice(open, close + 1)) as string) : inner, end: close + 1}
}

/** The parts of a key or value printed with ` . ` between them, quotes taken off; one part (a verdict) is taken whole. */
function splitParts(text: string, count: number): string[] {
  const parts = count === 1 ? [text] : text.split(SEPARATOR)
  return parts.map((part) => (part.length > 1 && part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1) : part))
}

const QUOTE = 0x22

/** Elements in the one order desired and read-back state share: by key as nft prints it. */
export function sortElements(types: ElementTypes, elements: NftElement[]): NftElement[] {
  return elements
    .map((element) => ({element, key: elementKey(types, element)}))
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map(({element}) => element)
}

/** A set or map of these elements, sorted as read back. */
export function sortedSet(name: string, keyType: string[], elements: NftElement[], dataType?: string[]): NftSet {
  const result: NftSet = {name, keyType, flags: [], elements: []}
  if (dataType) result.dataType = dataType
  result.elements = sortElements(result, elements)
  return result
}

/**
 * A set of these types whose elements are made by `elements` each time they are read, a new array
 * each time (callers read them once); shaped as sortedSet makes a set, so that it compares, copies
 * and prints as every other set does. A daemon keeps its sets so (renderer.ts, egress-part.ts): a
 * pass after a change tells the diff which elements changed and never reads them, a pass that
 * reads the kernel reads them once to compare. `each` hands them over one by one, in the same
 * order, without an array of them all (eachElement).
 */
export function setMadeOnRead(name: string, types: ElementTypes, elements: () => NftElement[], each?: (visit: (element: NftElement) => void) => void): NftSet {
  const set = {name, keyType: types.keyType, flags: []} as unknown as NftSet
  Object.defineProperty(set, 'elements', {enumerable: true, get: elements})
  if (types.dataType) set.dataType = types.dataType
  if (each) madeOneByOne.set(set, each)
  return set
}

const madeOneByOne = new WeakMap<NftSet, (visit: (element: NftElement) => void) => void>()

/**
 * Hands `set`'s elements to `visit` in order. A set made when read that can make them one by one
 * does, so that none outlives its visit: the egress sets print 40,000 elements (7 MB) at 10,000
 * Mappings, which as one array would outlive V8's young generation and stay in the heap as garbage.
 */
export function eachElement(set: NftSet, visit: (element: NftElement) => void): void {
  const each = madeOneByOne.get(set)
  if (each) each(visit)
  else for (const element of set.elements) visit(element)
}

/**
 * What each type is declared from in a `typeof` declaration, which nft needs for a key holding a
 * `numgen` slot (an integer has no fixed size as a `type`). nft's JSON lists only the types, so the
 * expressions are derived from them, the same for desired and read-back state. The `mod` only gives
 * the slot's type (a 32-bit integer): rules with any modulus look the map up.
 */
const TYPEOF: Record<string, string> = {ipv4_addr: 'ip daddr', inet_proto: 'meta l4proto', inet_service: 'th dport', integer: 'numgen random mod 1'}

function typeLine(set: NftSet): string {
  const types = [set.keyType, ...(set.dataType ? [set.dataType] : [])]
  if (!set.keyType.includes('integer')) return `type ${types.map((parts) => parts.join(' . ')).join(' : ')}`
  return `typeof ${types.map((parts) => parts.map((type) => TYPEOF[type] ?? type).join(' . ')).join(' : ')}`
}

/** The lines inside a set's or map's braces before its elements: type, flags, timeout. */
function declarationLines(set: NftSet): string[] {
  const lines = [typeLine(set)]
  if (set.flags.length > 0) lines.push(`flags ${set.flags.join(', ')}`)
  if (set.timeout !== undefined) lines.push(`timeout ${set.timeout}s`)
  return lines
}

/** The declaration of a set or map without its elements: what makes a change structural. */
export function setDeclaration(set: NftSet): string {
  return `${set.dataType ? 'map' : 'set'} ${set.name} { ${declarationLines(set).map((line) => `${line}; `).join('')}}`
}

/** A chain's header and rules on one line each: what makes a change structural. */
export function chainLines(chain: NftChain): string[] {
  const header = chain.base
    ? `chain ${chain.name} { type ${chain.base.type} hook ${chain.base.hook} priority ${chain.base.priority}; policy accept; }`
    : `chain ${chain.name} { }`
  return [header, ...chain.rules.map(printRule)]
}

function writeSet(out: LineBuffer, set: NftSet): void {
  out.write(`\t${set.dataType ? 'map' : 'set'} ${set.name} {`)
  for (const line of declarationLines(set)) out.write(`\t\t${line}`)
  // Read once: a daemon's set makes its elements each time they are read (setMadeOnRead).
  const {elements} = set
  if (elements.length > 0) {
    out.write('\t\telements = {')
    const last = elements.length - 1
    out.writeLines(elements.map((element, i) => `\t\t\t${element}${i < last ? ',' : ''}`))
    out.write('\t\t}')
  }
  out.write('\t}')
}

function writeChain(out: LineBuffer, chain: NftChain): void {
  out.write(`\tchain ${chain.name} {`)
  if (chain.base) out.write(`\t\ttype ${chain.base.type} hook ${chain.base.hook} priority ${chain.base.priority}; policy accept;`)
  for (const rule of chain.rules) out.write(`\t\t${printRule(rule)}`)
  out.write('\t}')
}

/**
 * The whole table as one `nft -f` transaction that works whether or not the table exists: add it
 * (a no-op when present), delete it, define it anew. What `sync --dry-run` prints, and a full apply.
 */
export function renderNftScript(state: NftState): string {
  const out = new LineBuffer()
  out.write(`table ${TABLE}`)
  out.write(`delete table ${TABLE}`)
  if (!state.table) return out.toString()
  out.write(`table ${TABLE} {`)
  for (const set of state.table.sets) writeSet(out, set)
  for (const chain of state.table.chains) writeChain(out, chain)
  out.write('}')
  return out.toString()
}
