/** Prints the nftables backend's rules, elements and table in nft's own syntax; pure. */
import {LineBuffer} from '../../net/linebuffer.js'
import {markHex} from '../../net/marks.js'
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

/** A string as an nft quoted string; callers pass only validated names, so a quote is a bug. */
export function quoted(text: string): string {
  if (/["\\\r\n]/.test(text)) throw new Error(`cannot quote ${JSON.stringify(text)} for nft`)
  return `"${text}"`
}

function printParts(parts: string[], types: string[]): string {
  return parts.map((part, i) => (types[i] === 'ifname' ? quoted(part) : part)).join(' . ')
}

/** The key of an element as nft prints it, which is also how elements are told apart. */
export function elementKey(set: NftSet, element: NftElement): string {
  return printParts(element.key, set.keyType)
}

/** Elements in the one order desired and read-back state share: by key as nft prints it. */
export function sortElements(set: NftSet, elements: NftElement[]): NftElement[] {
  return elements
    .map((element) => ({element, key: elementKey(set, element)}))
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

/** An element as written inside `{ }`: key, comment, then `: value` for maps. */
export function printElement(set: NftSet, element: NftElement): string {
  const comment = element.comment === undefined ? '' : ` comment ${quoted(element.comment)}`
  const value = element.value === undefined ? '' : ` : ${printParts(element.value, set.dataType ?? [])}`
  return `${elementKey(set, element)}${comment}${value}`
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
  if (set.elements.length > 0) {
    out.write('\t\telements = {')
    const last = set.elements.length - 1
    out.writeLines(set.elements.map((element, i) => `\t\t\t${printElement(set, element)}${i < last ? ',' : ''}`))
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
