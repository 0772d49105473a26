/**
 * Reads `nft -j list table ip smartnat` into an NftTable; pure. Rules of the shapes smartnat renders
 * become syntax trees; any other rule is kept as JSON, so it reads as different and is replaced.
 */
import {parseIpv4} from '../../net/ipv4.js'
import {compareText} from '../../plan/order.js'
import {NftListingSplitter, readWholeListing, type NftListingSink} from './json-items.js'
import {TABLE_FAMILY, TABLE_NAME, isDirectChain} from './names.js'
import {detached} from '../../net/shared-strings.js'
import {eachElement, printElement, sortElements, type ElementParts} from './syntax.js'
import {textHash} from '../../net/text-hash.js'
import type {MarkOf, NftBaseChain, NftChain, NftElement, NftMatch, NftRule, NftSet, NftStatement, NftTable, Selector} from './types.js'

type Json = unknown
type JsonObject = Record<string, Json>

const SELECTORS: Record<string, Selector> = {
  'payload ip saddr': 'ip saddr',
  'payload ip daddr': 'ip daddr',
  'payload th dport': 'th dport',
  'meta l4proto': 'meta l4proto',
  'meta iifname': 'iifname',
  'meta oifname': 'oifname',
}

const HOOKS = new Set(['prerouting', 'input', 'forward', 'output', 'postrouting'])

/** A rule shape this parser does not know; the rule is then kept as unknown. */
class UnknownShape extends Error {}

function isObject(value: Json): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function only(value: Json): [string, Json] {
  if (!isObject(value)) throw new UnknownShape()
  const entries = Object.entries(value)
  if (entries.length !== 1) throw new UnknownShape()
  return entries[0]!
}

function field(value: Json, name: string): Json {
  return isObject(value) ? value[name] : undefined
}

function selector(value: Json): Selector {
  const [kind, body] = only(value)
  if (kind === '&') return maskedSource(body)
  const key = kind === 'payload' ? `payload ${String(field(body, 'protocol'))} ${String(field(body, 'field'))}` : `${kind} ${String(field(body, 'key'))}`
  const found = SELECTORS[key]
  if (!found) throw new UnknownShape()
  return found
}

/** `ip saddr & 255.255.255.0` as JSON: {"&": [{"payload": {"protocol": "ip", "field": "saddr"}}, "255.255.255.0"]} */
function maskedSource(operands: Json): Selector {
  if (!Array.isArray(operands) || operands.length !== 2 || typeof operands[1] !== 'string') throw new UnknownShape()
  if (selector(operands[0]) !== 'ip saddr' || parseIpv4(operands[1]) !== operands[1]) throw new UnknownShape()
  return `ip saddr & ${operands[1]}`
}

function selectors(value: Json): Selector[] {
  const concat = field(value, 'concat')
  return Array.isArray(concat) ? concat.map(selector) : [selector(value)]
}

function markOf(value: Json): MarkOf {
  const [kind, body] = only(value)
  if ((kind === 'meta' || kind === 'ct') && field(body, 'key') === 'mark') return kind
  throw new UnknownShape()
}

function number(value: Json): number {
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new UnknownShape()
  return value >>> 0
}

/** `MARK & MASK` as JSON: {"&": [{"ct": {"key": "mark"}}, MASK]} */
function maskedMark(value: Json): {of: MarkOf; mask: number} {
  const operands = field(value, '&')
  if (!Array.isArray(operands) || operands.length !== 2) throw new UnknownShape()
  return {of: markOf(operands[0]), mask: number(operands[1])}
}

function setReference(value: Json): string {
  if (typeof value !== 'string' || !value.startsWith('@')) throw new UnknownShape()
  return value.slice(1)
}

function parseMatch(body: Json): NftMatch {
  const op = field(body, 'op')
  const left = field(body, 'left')
  const right = field(body, 'right')
  if (typeof right === 'string' && right.startsWith('@') && (op === '==' || op === '!=')) {
    return {kind: 'lookup', key: selectors(left), set: setReference(right), negate: op === '!='}
  }
  const [leftKind, leftBody] = isObject(left) ? only(left) : ['', undefined]
  const key = field(leftBody, 'key')
  if (leftKind === 'meta' && key === 'iifname' && op === '==' && typeof right === 'string') return {kind: 'iifname', name: right}
  if (leftKind === 'ct' && key === 'state' && (op === 'in' || op === '==') && right === 'new') return {kind: 'ct state', state: 'new'}
  if (leftKind === 'ct' && key === 'direction' && op === '==' && (right === 'original' || right === 'reply')) {
    return {kind: 'ct direction', direction: right}
  }
  if (leftKind === 'meta' && key === 'l4proto' && op === '==' && (right === 'tcp' || right === 'udp')) return {kind: 'l4proto', protocol: right}
  if (leftKind === 'payload' && field(leftBody, 'protocol') === 'ip' && field(leftBody, 'field') === 'daddr' && op === '==' && typeof right === 'string' && parseIpv4(right) === right) {
    return {kind: 'daddr', ip: right}
  }
  if (leftKind === '&' && (op === '==' || op === '!=')) {
    const {of, mask} = maskedMark(left)
    return {kind: 'mark', of, mask, value: number(right), negate: op === '!='}
  }
  throw new UnknownShape()
}

function parseMangle(body: Json): NftStatement {
  const of = markOf(field(body, 'key'))
  const operands = field(field(body, 'value'), '|')
  if (!Array.isArray(operands) || operands.length !== 2) throw new UnknownShape()
  const [kept, or] = operands
  // nft leaves out an AND that keeps every bit: `meta mark set meta mark | 0x00080000`.
  const and = isObject(kept) && '&' in kept ? maskedMark(kept) : {of: markOf(kept), mask: 0xffffffff}
  if (and.of !== of) throw new UnknownShape()
  return {kind: 'set mark', of, and: and.mask, or: number(or)}
}

function parseNat(kind: 'dnat' | 'snat', body: Json): NftStatement {
  if (!isObject(body)) throw new UnknownShape()
  const {addr, port} = body
  // `dnat to 198.19.200.11:8080`, a member chain's: {"addr": "198.19.200.11", "port": 8080}
  if (kind === 'dnat' && typeof addr === 'string' && onlyKeys(body, ['addr', 'port', 'family'])) {
    if (parseIpv4(addr) !== addr || typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new UnknownShape()
    return {kind: 'dnat to', ip: addr, port}
  }
  // `snat to 198.18.2.10`, the masquerade to an HA pair's cluster-side address: {"addr": "198.18.2.10"}
  if (kind === 'snat' && typeof addr === 'string' && onlyKeys(body, ['addr', 'family'])) {
    if (parseIpv4(addr) !== addr) throw new UnknownShape()
    return {kind: 'snat to', ip: addr}
  }
  const map = field(addr, 'map')
  if (!onlyKeys(body, ['addr', 'family']) || map === undefined) throw new UnknownShape()
  const key = field(map, 'key')
  const concat = field(key, 'concat')
  const numgen = Array.isArray(concat) ? field(concat.at(-1), 'numgen') : undefined
  if (kind === 'dnat' && numgen !== undefined) {
    // A pick chain's: `dnat to ip daddr . meta l4proto . th dport . numgen random mod N map @targets`
    const modulus = field(numgen, 'mod')
    if (!isObject(numgen) || !onlyKeys(numgen, ['mode', 'mod', 'offset']) || field(numgen, 'mode') !== 'random' || field(numgen, 'offset') !== 0) throw new UnknownShape()
    if (typeof modulus !== 'number' || !Number.isInteger(modulus) || modulus < 1) throw new UnknownShape()
    return {kind: 'pick', key: (concat as Json[]).slice(0, -1).map(selector), modulus, map: setReference(field(map, 'data'))}
  }
  return {kind, key: selectors(key), map: setReference(field(map, 'data'))}
}

function onlyKeys(body: JsonObject, allowed: string[]): boolean {
  return Object.keys(body).every((k) => allowed.includes(k))
}

/** `{"goto": {"target": CHAIN}}` and nothing else. */
function gotoTarget(value: Json): string {
  const [kind, body] = only(value)
  const target = field(body, 'target')
  if (kind !== 'goto' || typeof target !== 'string' || Object.keys(body as JsonObject).length !== 1) throw new UnknownShape()
  return target
}

/** `{"set": [[VALUE, {"goto": {"target": CHAIN}}], ...]}`, sorted by value. */
function gotoEntries(data: Json): {value: number; chain: string}[] {
  const entries = field(data, 'set')
  if (!Array.isArray(entries)) throw new UnknownShape()
  return entries
    .map((entry: Json) => {
      if (!Array.isArray(entry) || entry.length !== 2) throw new UnknownShape()
      return {value: number(entry[0]), chain: gotoTarget(entry[1])}
    })
    .sort((a, b) => a.value - b.value)
}

function parseVmap(body: Json): NftStatement {
  const key = field(body, 'key')
  const data = field(body, 'data')
  // `ip daddr . meta l4proto . th dport vmap @direct`
  if (typeof data === 'string') return {kind: 'dispatch', key: selectors(key), map: setReference(data)}
  const numgen = field(key, 'numgen')
  if (numgen !== undefined) {
    const entries = gotoEntries(data)
    if (field(numgen, 'mode') !== 'random' || field(numgen, 'offset') !== 0 || field(numgen, 'mod') !== entries.length) throw new UnknownShape()
    if (entries.some((entry, i) => entry.value !== i)) throw new UnknownShape()
    return {kind: 'numgen', chains: entries.map((entry) => entry.chain)}
  }
  const {of, mask} = maskedMark(key)
  return {kind: 'vmap', of, mask, entries: gotoEntries(data).map(({value, chain}) => ({value, chain}))}
}

/** `update @SET { ip saddr }` as JSON: {"set": {"op": "update", "elem": KEY, "set": "@SET"}} */
function parseSetStatement(body: Json): NftStatement {
  if (!isObject(body) || body.op !== 'update' || !onlyKeys(body, ['op', 'elem', 'set'])) throw new UnknownShape()
  return {kind: 'update', set: setReference(body.set), key: selectors(body.elem)}
}

/** `reject with tcp reset`: {"type": "tcp reset"}; `reject`: {"type": "icmp", "expr": "port-unreachable"}. */
function parseReject(body: Json): NftStatement {
  if (!isObject(body)) throw new UnknownShape()
  if (body.type === 'tcp reset' && onlyKeys(body, ['type'])) return {kind: 'reject', with: 'tcp reset'}
  if (body.type === 'icmp' && body.expr === 'port-unreachable' && onlyKeys(body, ['type', 'expr'])) return {kind: 'reject', with: 'icmp port-unreachable'}
  throw new UnknownShape()
}

function parseStatement(kind: string, body: Json): NftStatement {
  switch (kind) {
    case 'accept':
    case 'drop':
    case 'return':
    case 'masquerade':
      if (body !== null) throw new UnknownShape()
      return {kind}
    case 'mangle':
      return parseMangle(body)
    case 'dnat':
    case 'snat':
      return parseNat(kind, body)
    case 'vmap':
      return parseVmap(body)
    case 'set':
      return parseSetStatement(body)
    case 'reject':
      return parseReject(body)
    case 'goto':
      return {kind: 'goto', chain: gotoTarget({goto: body})}
    default:
      throw new UnknownShape()
  }
}

/** One rule's `expr` list: matches, then exactly one statement last. */
export function parseRuleExpressions(expr: Json): NftRule {
  try {
    if (!Array.isArray(expr) || expr.length === 0) throw new UnknownShape()
    const matches = expr.slice(0, -1).map((item: Json) => {
      const [kind, body] = only(item)
      if (kind !== 'match') throw new UnknownShape()
      return parseMatch(body)
    })
    const [kind, body] = only(expr[expr.length - 1])
    return {matches, statement: parseStatement(kind, body)}
  } catch (error) {
    if (error instanceof UnknownShape) return {unknown: JSON.stringify(expr)}
    throw error
  }
}

/** Where an element is read: its set, for messages. */
interface ElementPlace {
  where: string
}

/** One part of an element key or value as nft prints it. */
function partText(value: Json, at: ElementPlace): string {
  if (typeof value === 'string') return value
  if (typeof value === 'number') return String(value)
  const prefix = field(value, 'prefix')
  if (prefix !== undefined) {
    const len = field(prefix, 'len')
    return len === 32 ? String(field(prefix, 'addr')) : `${String(field(prefix, 'addr'))}/${String(len)}`
  }
  const range = field(value, 'range')
  if (Array.isArray(range) && range.length === 2) return `${partText(range[0], at)}-${partText(range[1], at)}`
  throw new Error(`${at.where}: unexpected element part ${JSON.stringify(value)}`)
}

function parts(value: Json, at: ElementPlace): string[] {
  // A verdict map's data: {"goto": {"target": "group_..."}}
  const target = field(field(value, 'goto'), 'target')
  if (typeof target === 'string') return [`goto ${target}`]
  const concat = field(value, 'concat')
  return Array.isArray(concat) ? concat.map((part: Json) => partText(part, at)) : [partText(value, at)]
}

/** `{"elem": {"val": KEY, "comment": "..."}}` or a bare KEY. */
function elementKeyParts(value: Json, at: ElementPlace): {key: string[]; comment?: string} {
  const elem = field(value, 'elem')
  if (elem === undefined) return {key: parts(value, at)}
  const comment = field(elem, 'comment')
  return {key: parts(field(elem, 'val'), at), ...(typeof comment === 'string' ? {comment} : {})}
}

/**
 * An element as printed, to keep; its parts are dropped. An element of one bare part is that part,
 * which JSON.parse may have cut out of the text it parsed (which it would keep alive): it is kept as a copy.
 */
function keptElement(element: NftElement, parts: ElementParts): NftElement {
  return parts.key.length === 1 && parts.comment === undefined && parts.value === undefined ? detached(element) : element
}

function typeList(value: Json): string[] {
  if (typeof value === 'string') return value.split(' . ')
  if (Array.isArray(value) && value.every((t) => typeof t === 'string')) return value as string[]
  throw new Error(`unexpected set type ${JSON.stringify(value)}`)
}

/**
 * A set's flags as the renderer writes them. nft 1.0.6 leaves `dynamic` out of its JSON (the text
 * listing shows it); smartnat's only sets with a timeout are the dynamic affinity sets.
 */
function setFlags(body: JsonObject): string[] {
  const flags = Array.isArray(body.flags) ? body.flags.map(String) : []
  return flags.includes('timeout') && !flags.includes('dynamic') ? ['dynamic', ...flags] : flags
}

/**
 * A set or map read element by element, as they come (json-items.ts) or from its "elem". Read against
 * a set expected (the state a daemon rendered last, NftTableReader's `like`), it counts off the
 * elements that set has by their hashes (ExpectedHashes) and keeps only those it lacks: when all
 * are met and nothing else came, the set read is the one expected, and a resync neither holds a
 * copy of the table (13 MB at 10,000 Mappings) nor sorts it.
 */
class SetReader {
  readonly set: NftSet
  private readonly at: ElementPlace
  /** Rules fill a dynamic set as traffic comes; what they put there is not smartnat's to compare. */
  private readonly dynamic: boolean
  /** Every element read, or with a set expected, those it does not have. */
  private readonly elements: NftElement[] = []
  /** The set expected, and the hashes of its elements. */
  private readonly expected: {set: NftSet; hashes: ExpectedHashes} | undefined

  constructor(
    body: JsonObject,
    private readonly isMap: boolean,
    like?: NftSet,
  ) {
    const name = String(body.name)
    this.at = {where: `nft set ${name}`}
    this.set = {name, keyType: typeList(body.type), flags: setFlags(body), elements: []}
    if (isMap) this.set.dataType = typeList(body.map)
    if (body.timeout !== undefined) this.set.timeout = Number(body.timeout)
    this.dynamic = this.set.flags.includes('dynamic')
    if (like && !this.dynamic && sameDeclaration(like, this.set)) this.expected = {set: like, hashes: new ExpectedHashes(like)}
  }

  /** What the elements are read with, to compare. */
  get header(): string {
    return JSON.stringify(this.set)
  }

  add(item: Json): void {
    // Parsed all the same: a listing that is not JSON fails the read, wherever it breaks.
    if (this.dynamic) return
    const {set, at} = this
    let element: ElementParts
    if (!this.isMap) element = elementKeyParts(item, at)
    else if (Array.isArray(item) && item.length === 2) element = {...elementKeyParts(item[0], at), value: parts(item[1], at)}
    else throw new Error(`${at.where}: unexpected map element ${JSON.stringify(item)}`)
    const printed = printElement(set, element, true)
    if (this.expected?.hashes.take(textHash(printed), MET)) return
    this.elements.push(keptElement(printed, element))
  }

  done(): NftSet {
    const {expected} = this
    if (expected === undefined) {
      this.set.elements = sortElements(this.set, this.elements)
      return this.set
    }
    if (expected.hashes.allMet && this.elements.length === 0) return expected.set
    // The expected elements that came, then those that were not expected.
    const met: NftElement[] = []
    eachElement(expected.set, (element) => {
      if (expected.hashes.take(textHash(element), TOLD, MET)) met.push(element)
    })
    this.set.elements = sortElements(this.set, [...met, ...this.elements])
    return this.set
  }
}

const MET = 1
const TOLD = 2

/**
 * The hashes (textHash) of a set's expected elements, sorted, with the state of each: not come yet,
 * come (MET), or, once the set is read, told (TOLD). Typed arrays of 9 bytes an element, outside
 * V8's heap: a Map of the hashes made 9 MB of garbage over the 100,000 elements of a resync at
 * 10,000 Mappings, and the elements themselves (the egress sets' 40,000 printed anew) more. An
 * element the kernel has instead of an expected one passes for it only if their 53-bit hashes are
 * equal: for a set of 20,000, a chance of about one in 4 * 10^11.
 */
class ExpectedHashes {
  private readonly hashes: Float64Array
  private readonly states: Uint8Array
  private left: number

  constructor(set: NftSet) {
    const hashes: number[] = []
    eachElement(set, (element) => hashes.push(textHash(element)))
    this.hashes = Float64Array.from(hashes).sort()
    this.states = new Uint8Array(this.hashes.length)
    this.left = this.hashes.length
  }

  /** Whether every expected element has come. */
  get allMet(): boolean {
    return this.left === 0
  }

  /** Moves one element of `hash` from state `from` to `to`; false when none of that hash is in `from`. */
  take(hash: number, to: number, from = 0): boolean {
    const {hashes, states} = this
    let low = 0
    let high = hashes.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (hashes[middle]! < hash) low = middle + 1
      else high = middle
    }
    for (let i = low; i < hashes.length && hashes[i] === hash; i++) {
      if (states[i] !== from) continue
      states[i] = to
      if (from === 0) this.left--
      return true
    }
    return false
  }
}

/** Whether two sets are declared alike, so that the same elements make them the same set. */
function sameDeclaration(a: NftSet, b: NftSet): boolean {
  const same = (x: readonly string[] | undefined, y: readonly string[] | undefined) => x?.join(' . ') === y?.join(' . ')
  return a.name === b.name && same(a.keyType, b.keyType) && same(a.dataType, b.dataType) && same(a.flags, b.flags) && a.timeout === b.timeout
}

function parseBase(body: JsonObject): NftBaseChain | undefined {
  if (body.hook === undefined) return undefined
  const {type, hook, prio} = body
  if ((type !== 'filter' && type !== 'nat' && type !== 'route') || typeof hook !== 'string' || !HOOKS.has(hook) || typeof prio !== 'number') {
    throw new Error(`nft chain ${String(body.name)}: unexpected base chain ${JSON.stringify(body)}`)
  }
  if (body.policy !== undefined && body.policy !== 'accept') throw new Error(`nft chain ${String(body.name)}: policy ${String(body.policy)}, smartnat's chains accept`)
  return {type, hook: hook as NftBaseChain['hook'], priority: prio}
}

/** The kind and body of an item of smartnat's table; undefined for anything else in the listing. */
function ownItem(item: Json): [string, JsonObject] | undefined {
  if (!isObject(item)) return undefined
  const [kind, body] = Object.entries(item)[0] ?? ['', undefined]
  if (!isObject(body) || body.family !== TABLE_FAMILY || (kind === 'table' ? body.name : body.table) !== TABLE_NAME) return undefined
  return [kind, body]
}

/** The reader of a set or map item of smartnat's table, against the set of its name in `like`. */
function setReader(item: Json, like?: ReadonlyMap<string, NftSet>): SetReader | undefined {
  const own = ownItem(item)
  return own && (own[0] === 'set' || own[0] === 'map') ? new SetReader(own[1], own[0] === 'map', like?.get(String(own[1].name))) : undefined
}

/**
 * The table smartnat owns, read from the items of `nft -j list table ip smartnat` as they come
 * (json-items.ts); `finish` gives it once the listing ended. Only what the table keeps is kept: a
 * set found as it is in `like` (what a daemon rendered last) is that set (SetReader).
 */
export class NftTableReader implements NftListingSink {
  private readonly sets: NftSet[] = []
  private readonly chains = new Map<string, NftChain>()
  /** The set or map whose elements are coming (no reader when it is not smartnat's), and its item as far as its "elem". */
  private reading: {reader: SetReader | undefined; head: string} | undefined
  private readonly like: ReadonlyMap<string, NftSet> | undefined

  constructor(like?: NftTable) {
    if (like) this.like = new Map(like.sets.map((set) => [set.name, set]))
  }

  item(item: Json): void {
    const own = ownItem(item)
    if (!own) return
    const [kind, body] = own
    if (kind === 'set' || kind === 'map') {
      const reader = new SetReader(body, kind === 'map', this.like?.get(String(body.name)))
      for (const element of Array.isArray(body.elem) ? (body.elem as Json[]) : []) reader.add(element)
      this.sets.push(reader.done())
    } else if (kind === 'chain') {
      const base = parseBase(body)
      this.chains.set(String(body.name), {name: String(body.name), ...(base ? {base} : {}), rules: []})
    } else if (kind === 'rule') {
      const chain = this.chains.get(String(body.chain))
      if (!chain) throw new Error(`nft -j list table: rule in unknown chain ${String(body.chain)}`)
      chain.rules.push(parseRuleExpressions(body.expr))
    }
  }

  elementsStart(head: Json): void {
    this.reading = {reader: setReader(head, this.like), head: JSON.stringify(head)}
  }

  element(value: Json): void {
    this.reading?.reader?.add(value)
  }

  elementsEnd(item: Json): void {
    const {reader, head} = this.reading!
    this.reading = undefined
    // nft lists "elem" last in a set's item; keys after it must not change how its elements read.
    if (JSON.stringify(item) !== head && setReader(item)?.header !== reader?.header) {
      throw new Error(`nft -j list table: set ${String(field(Object.values(item as JsonObject)[0], 'name'))} has keys after its elements that change how they read`)
    }
    if (reader) this.sets.push(reader.done())
  }

  /** The table, once every item was read. */
  finish(): NftTable {
    // Group and member chains are added one by one over time, so nft lists them in no useful order.
    const all = [...this.chains.values()]
    const direct = all.filter((chain) => isDirectChain(chain.name)).sort((a, b) => compareText(a.name, b.name))
    return {sets: this.sets.sort((a, b) => compareText(a.name, b.name)), chains: [...all.filter((chain) => !isDirectChain(chain.name)), ...direct]}
  }
}

/** The table smartnat owns as `nft -j list table ip smartnat` prints it, from the whole text; its sets found as in `like` are those. */
export function parseNftJson(text: string, like?: NftTable): NftTable {
  const table = new NftTableReader(like)
  const listing = new NftListingSplitter(table)
  listing.write(Buffer.from(text))
  if (listing.end()) return table.finish()
  // Something follows the "nftables" array: what the listing holds is what JSON.parse finds in it.
  const whole = new NftTableReader(like)
  readWholeListing(text, whole)
  return whole.finish()
}
