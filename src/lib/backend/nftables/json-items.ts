/**
 * The items of nft's JSON listing (`{"nftables": [ITEM, ...]}`), taken apart as its bytes arrive:
 * each item is parsed on its own once its last byte is there, and a set's or map's elements each on
 * their own too. At 10,000 Mappings the listing is about 15 MB; held as text it was that much again
 * as the chunks it came in, and parsed whole its tree is several times that. Here no more than one
 * item's bytes (a set's or map's: its header and one element) outlive the chunk they came in, and
 * each element's tree dies young (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */

// The listing is read without regular expressions: V8 keeps the subject of the last match (or the
// listing a slice of it is taken from) alive until some other expression matches, anywhere.

/** What the items of a listing are handed to, in the order they come. */
export interface NftListingSink {
  /** An item, whole (a set or map too, when its elements are not in the plain shape taken apart here). */
  item(value: unknown): void
  /**
   * A set or map whose elements come next, one by one: the item as far as its "elem", that empty
   * (`{"set": {..., "elem": []}}`). A second "elem" in the same item starts again, as JSON.parse keeps the last.
   */
  elementsStart(head: unknown): void
  element(value: unknown): void
  /** The set or map's item once it ended, whole but for its elements ("elem" empty). */
  elementsEnd(item: unknown): void
}

/**
 * Takes nft's listing apart as its bytes come, chunk by chunk (split anywhere: in a string, in a
 * character, after a backslash), and hands each item to a sink once it is complete. A span is
 * decoded only when its last byte is there, so a character is never cut. A listing that does not
 * open as `{"nftables": [` is kept whole and parsed at the end, as JSON.parse reads it.
 */
export class NftListingSplitter {
  private phase = OPENING
  /** How much of `{"nftables":[` is matched. */
  private opened = 0
  /** The chunks of a listing that does not open in the plain shape, parsed whole at the end; and those of the opening until then. */
  private kept: Buffer[] = []
  /** Bytes of the listing before the current chunk, for messages. */
  private offset = 0
  /** The state of the "nftables" array and of an "elem" array: what may come next between values. */
  private items = FIRST
  private elems = FIRST
  /** How many arrays and objects are open in the current item (0 between items). */
  private depth = 0
  /** The depth of the "elem" array being taken apart (its elements are one deeper), -1 outside one. */
  private elemDepth = -1
  private inString = false
  private escaped = false
  /** A number, `true`, `false` or `null` as a value of the "nftables" or "elem" array, not yet ended. */
  private inLiteral = false
  /** The current item: its first key is still to come (it is an object); that key was "set" or "map". */
  private firstKey = false
  private setOrMap = false
  /** The bytes of the string being read, as far as KEY_BYTES, when it may be a key that matters; -1 otherwise. */
  private keyLength = -1
  private readonly key = new Uint8Array(KEY_BYTES)
  /** After `"elem"` in a set's or map's body: `:` (AFTER_KEY) and `[` (AFTER_COLON) may follow. */
  private elemKey = NOT_ELEM
  /** The set's or map's item before its elements, as text, while they are taken apart. */
  private head: string | undefined
  private readonly itemSpan = new Span()
  private readonly elemSpan = new Span()

  constructor(private readonly sink: NftListingSink) {}

  /** The bytes kept from earlier chunks, for tests: one item's, or the header and one element of a set's or map's. */
  get heldBytes(): number {
    return this.itemSpan.held + this.elemSpan.held + Buffer.byteLength(this.head ?? '') + this.kept.reduce((sum, chunk) => sum + chunk.length, 0)
  }

  /** Takes the next chunk of the listing; throws 'output is not JSON' where it breaks, and what the sink throws. */
  write(chunk: Buffer): void {
    if (this.phase === WHOLE) {
      this.kept.push(chunk)
      return
    }
    let i = 0
    if (this.phase === OPENING) i = this.opening(chunk)
    if (this.phase === WHOLE) return
    const n = chunk.length
    for (; i < n; i++) {
      let c = chunk[i]!
      if (this.inString) {
        if (this.escaped) {
          this.escaped = false
          continue
        }
        if (this.keyLength < 0) {
          // Most of the listing's bytes: straight on to the string's closing quote or next backslash.
          while (c !== QUOTE && c !== BACKSLASH && ++i < n) c = chunk[i]!
          if (i === n) break
        }
        if (c === BACKSLASH) this.escaped = true
        else if (c === QUOTE) this.stringEnded(chunk, i)
        else if (this.keyLength++ < KEY_BYTES) this.key[this.keyLength - 1] = c
        continue
      }
      if (this.inLiteral) {
        if (!endsLiteral(c)) continue
        this.inLiteral = false
        this.valueEnded(chunk, i)
      }
      if (this.elemKey !== NOT_ELEM && this.afterElemKey(chunk, i, c)) continue
      if (this.depth === this.elemDepth) this.betweenElements(i, c)
      else if (this.depth > 0) this.inValue(chunk, i, c)
      else if (this.phase === ITEMS) this.betweenItems(i, c)
      else this.afterItems(i, c)
    }
    this.itemSpan.carry(chunk)
    this.elemSpan.carry(chunk)
    this.offset += n
  }

  /**
   * Ends the listing; throws 'output is not JSON' when it broke off. False when something follows
   * the "nftables" array (`{"nftables": [...], "other": ...}`): the items handed over may not be the
   * listing's (a second "nftables" would replace them), which only parsing the whole text tells.
   */
  end(): boolean {
    if (this.phase === OPENING || this.phase === WHOLE) {
      const text = Buffer.concat(this.kept).toString('utf8')
      this.kept = []
      readWholeListing(text, this.sink)
      return true
    }
    if (this.phase === OTHER_KEYS) return false
    if (this.phase !== CLOSED) this.broken(`it ends after ${this.offset} bytes`)
    return true
  }

  /** Matches `{"nftables":[` (JSON's whitespace between its tokens) at the start; at the first byte that differs, keeps the listing whole. */
  private opening(chunk: Buffer): number {
    for (let i = 0; i < chunk.length; i++) {
      const c = chunk[i]!
      if (isSpace(c) && TOKEN_STARTS.includes(this.opened)) continue
      if (c !== OPENING_BYTES[this.opened]) {
        this.phase = WHOLE
        this.kept.push(chunk)
        return chunk.length
      }
      if (++this.opened === OPENING_BYTES.length) {
        this.phase = ITEMS
        this.kept = []
        return i + 1
      }
    }
    this.kept.push(chunk)
    return chunk.length
  }

  /** A byte of the "nftables" array between items. */
  private betweenItems(i: number, c: number): void {
    if (isSpace(c)) return
    if (c === COMMA || c === CLOSE_BRACKET) {
      // `[]` has no item; any other empty place (`[,`, `,,`, `,]`) is not JSON.
      if (this.items !== NEXT && (c === COMMA || this.items === AFTER_COMMA)) this.unexpected(i)
      if (c === COMMA) this.items = AFTER_COMMA
      else this.phase = AFTER_ITEMS
      return
    }
    if (this.items === NEXT) this.unexpected(i)
    this.items = NEXT
    this.itemSpan.open(i)
    this.firstKey = c === OPEN_BRACE
    this.setOrMap = false
    this.valueStarted(c)
  }

  /** A byte of an "elem" array between elements. */
  private betweenElements(i: number, c: number): void {
    if (isSpace(c)) return
    if (c === COMMA || c === CLOSE_BRACKET) {
      if (this.elems !== NEXT && (c === COMMA || this.elems === AFTER_COMMA)) this.unexpected(i)
      if (c === COMMA) this.elems = AFTER_COMMA
      else {
        // The rest of the item, from this `]` on, is its header's end.
        this.depth--
        this.elemDepth = -1
        this.itemSpan.open(i)
      }
      return
    }
    if (this.elems === NEXT) this.unexpected(i)
    this.elems = NEXT
    this.elemSpan.open(i)
    this.valueStarted(c)
  }

  /** The first byte of a value of the "nftables" or an "elem" array. */
  private valueStarted(c: number): void {
    if (c === OPEN_BRACE || c === OPEN_BRACKET) this.depth++
    else if (c === QUOTE) {
      this.inString = true
      this.keyLength = -1
    } else this.inLiteral = true
  }

  /** A byte inside an item or element, outside its strings. */
  private inValue(chunk: Buffer, i: number, c: number): void {
    if (c === QUOTE) {
      this.inString = true
      // The item's first key, and the keys of a set's or map's body, are compared with "set", "map" and "elem".
      this.keyLength = (this.depth === 1 && this.firstKey) || (this.depth === 2 && this.setOrMap) ? 0 : -1
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) this.depth++
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
      this.depth--
      if (this.depth === 0 || this.depth === this.elemDepth) this.valueEnded(chunk, i + 1)
    }
  }

  /** The closing quote of a string at `i`. */
  private stringEnded(chunk: Buffer, i: number): void {
    this.inString = false
    if (this.depth === 0 || this.depth === this.elemDepth) {
      this.valueEnded(chunk, i + 1)
      return
    }
    if (this.keyLength < 0) return
    if (this.depth === 1) {
      this.firstKey = false
      this.setOrMap = this.keyIs(SET) || this.keyIs(MAP)
    } else if (this.keyIs(ELEM)) this.elemKey = AFTER_KEY
  }

  private keyIs(name: Uint8Array): boolean {
    if (this.keyLength !== name.length) return false
    for (let k = 0; k < name.length; k++) if (this.key[k] !== name[k]) return false
    return true
  }

  /** After `"elem"` in a set's or map's body: true when `c` was taken as its `:` or `[` (or the space before them). */
  private afterElemKey(chunk: Buffer, i: number, c: number): boolean {
    if (isSpace(c)) return true
    if (this.elemKey === AFTER_KEY && c === COLON) {
      this.elemKey = AFTER_COLON
      return true
    }
    const opens = this.elemKey === AFTER_COLON && c === OPEN_BRACKET
    this.elemKey = NOT_ELEM
    if (!opens) return false
    this.depth++
    this.elemDepth = this.depth
    this.elems = FIRST
    this.head = (this.head ?? '') + this.itemSpan.close(chunk, i + 1)
    // The "elem" array and the two objects around it closed: the item as far as here.
    this.sink.elementsStart(parseJson(`${this.head}]}}`))
    return true
  }

  /** The value of the "nftables" or an "elem" array that ends before `end` is complete. */
  private valueEnded(chunk: Buffer, end: number): void {
    if (this.depth === this.elemDepth) {
      this.sink.element(parseJson(this.elemSpan.close(chunk, end)))
      return
    }
    const text = this.itemSpan.close(chunk, end)
    if (this.head === undefined) {
      this.sink.item(parseJson(text))
      return
    }
    const item = parseJson(this.head + text)
    this.head = undefined
    this.sink.elementsEnd(item)
  }

  /** A byte after the "nftables" array: `}` and then nothing but whitespace. */
  private afterItems(i: number, c: number): void {
    if (isSpace(c) || this.phase === OTHER_KEYS) return
    if (this.phase === AFTER_ITEMS && c === CLOSE_BRACE) this.phase = CLOSED
    else if (this.phase === AFTER_ITEMS && c === COMMA) this.phase = OTHER_KEYS
    else this.unexpected(i)
  }

  private broken(where: string): never {
    throw new Error('nft -j list table: output is not JSON', {cause: new SyntaxError(where)})
  }

  private unexpected(i: number): never {
    this.broken(`unexpected byte at ${this.offset + i}`)
  }
}

/** Hands the items of a listing that is not the plain shape to `sink`, as JSON.parse of the whole text gives them. */
export function readWholeListing(text: string, sink: NftListingSink): void {
  const items = field(parseJson(text), 'nftables')
  if (!Array.isArray(items)) throw new Error('nft -j list table: no "nftables" array')
  for (const item of items) sink.item(item)
}

function field(value: unknown, name: string): unknown {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>)[name] : undefined
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    if (error instanceof SyntaxError) throw new Error('nft -j list table: output is not JSON', {cause: error})
    throw error
  }
}

/**
 * Where a value starts in the current chunk, and its bytes from earlier chunks, copied: a slice
 * would keep its whole chunk alive.
 */
class Span {
  /** The bytes of memory its pieces keep. */
  held = 0
  private pieces: Buffer[] = []
  private start = -1

  open(at: number): void {
    this.start = at
  }

  /** Keeps the bytes of the current chunk from the span's start on, before the next chunk comes. */
  carry(chunk: Buffer): void {
    if (this.start < 0) return
    // Memory of its own, not a slice of Buffer's shared pool: `held` is what the piece keeps alive.
    const piece = Buffer.allocUnsafeSlow(chunk.length - this.start)
    chunk.copy(piece, 0, this.start)
    this.pieces.push(piece)
    this.held += piece.buffer.byteLength
    this.start = 0
  }

  /** The span's text up to `end` in the current chunk; the span is then closed. */
  close(chunk: Buffer, end: number): string {
    const text = this.pieces.length === 0 ? chunk.toString('utf8', this.start, end) : Buffer.concat([...this.pieces, chunk.subarray(this.start, end)]).toString('utf8')
    this.pieces = []
    this.held = 0
    this.start = -1
    return text
  }
}

/** JSON's whitespace: space, tab, line feed, carriage return; text JSON.parse would refuse must not pass here. */
function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d
}

/** What ends a number or a literal: whitespace, or JSON's punctuation. */
function endsLiteral(c: number): boolean {
  return isSpace(c) || c === COMMA || c === CLOSE_BRACKET || c === CLOSE_BRACE || c === OPEN_BRACKET || c === OPEN_BRACE || c === QUOTE || c === COLON
}

/** The index of the quote that ends the string whose opening quote is at `open` (the text's end when none does). */
export function stringEnd(text: string, open: number): number {
  for (let i = open + 1; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === BACKSLASH) i++
    else if (c === QUOTE) return i
  }
  return text.length
}

const OPENING_BYTES = Buffer.from('{"nftables":[')
/** Where in OPENING_BYTES a token starts, which whitespace may come before. */
const TOKEN_STARTS = [0, 1, 11, 12]
const SET = Buffer.from('set')
const MAP = Buffer.from('map')
const ELEM = Buffer.from('elem')
const KEY_BYTES = 4

// The splitter's phases.
const OPENING = 0
const WHOLE = 1
const ITEMS = 2
const AFTER_ITEMS = 3
const CLOSED = 4
const OTHER_KEYS = 5

// Where an array is between its values.
const FIRST = 0
const NEXT = 1
const AFTER_COMMA = 2

// Where a set's or map's body is after a string "elem".
const NOT_ELEM = 0
const AFTER_KEY = 1
const AFTER_COLON = 2

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const COLON = 0x3a
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
