/**
 * The items of nft's JSON listing (`{"nftables": [ITEM, ...]}`), each parsed on its own, and a set's
 * or map's elements each on their own too. At 10,000 Mappings the listing is about 15 MB; parsed
 * whole, its tree is several times that and all of it is alive at once. Parsed item by item, a set
 * of 20,000 elements would still be one tree of 10 MB, which lives long enough to be moved to V8's
 * old generation; element by element, each tree dies young, and only what the state keeps is left
 * (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */

// The listing is read without regular expressions: V8 keeps the subject of the last match (or the
// listing a slice of it is taken from) alive until some other expression matches, anywhere.
const ELEM_KEY = '"elem"'

/** One item of the listing. */
export interface NftJsonItem {
  /** The item as JSON.parse gives it, except that a set's or map's "elem" is an empty array when `elements` is there. */
  value: unknown
  /** The items of the "elem" array, each parsed when the iteration reaches it (an element that is not JSON throws there). */
  elements?: Iterable<unknown>
}

/**
 * The items of `text`, each parsed when the iteration reaches it (an item that is not JSON throws
 * there); undefined when `text` is not exactly one object holding the "nftables" array, which is
 * left to JSON.parse of the whole text.
 */
export function nftJsonItems(text: string): Iterable<NftJsonItem> | undefined {
  const opening = expect(text, 0, ['{', '"nftables"', ':', '['])
  if (opening === undefined) return undefined
  const array = arraySpans(text, opening)
  const closing = array && expect(text, array.end, [']', '}'])
  if (!array || closing === undefined || skipSpace(text, closing) !== text.length) return undefined
  return parseEach(text, array.spans)
}

/** Where `tokens` end when they follow `from` in `text`, each after JSON's own whitespace; undefined when they do not. */
function expect(text: string, from: number, tokens: readonly string[]): number | undefined {
  let i = from
  for (const token of tokens) {
    i = skipSpace(text, i)
    if (!text.startsWith(token, i)) return undefined
    i += token.length
  }
  return i
}

/** The first index at or after `from` that is not JSON whitespace (space, tab, line feed, carriage return): text JSON.parse would refuse must not pass here. */
function skipSpace(text: string, from: number): number {
  let i = from
  while (i < text.length) {
    const c = text.charCodeAt(i)
    if (c !== 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d) break
    i++
  }
  return i
}

function* parseEach(text: string, spans: Spans): Iterable<NftJsonItem> {
  for (let k = 0; k < spans.length; k += 2) {
    const start = spans[k]!
    const end = spans[k + 1]!
    const setOrMap = expect(text, start, ['{', '"set"', ':']) !== undefined || expect(text, start, ['{', '"map"', ':']) !== undefined
    const elem = setOrMap ? elemArray(text, start, end) : undefined
    if (!elem) {
      yield {value: parseJson(text.slice(start, end))}
      continue
    }
    // The item with an empty "elem": `..."elem": [` and `]...`, the elements between left out.
    const value = parseJson(text.slice(start, elem.open + 1) + text.slice(elem.close, end))
    yield {value, elements: parseSpans(text, elem.spans)}
  }
}

function* parseSpans(text: string, spans: Spans): Iterable<unknown> {
  for (let k = 0; k < spans.length; k += 2) yield parseJson(text.slice(spans[k], spans[k + 1]))
}

/**
 * Where each item of an array starts and ends in the text, one after the other (`[start0, end0, start1, ...]`): at
 * 10,000 Mappings the listing's sets hold 100,000 elements, and a `[start, end]` array for each took 6 MB,
 * which outlived the young generation and was left in the old one.
 */
type Spans = number[]

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch (error) {
    if (error instanceof SyntaxError) throw new Error('nft -j list table: output is not JSON', {cause: error})
    throw error
  }
}

/**
 * Where the items of the array whose `[` is just before `from` are, found by brackets and strings
 * alone, and where its `]` is; undefined when the text there is not an array of that plain shape.
 */
function arraySpans(text: string, from: number): {spans: Spans; end: number} | undefined {
  const spans: Spans = []
  let start = from
  let depth = 0
  for (let i = from; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) i = stringEnd(text, i)
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++
    else if (depth > 0 && (c === CLOSE_BRACE || c === CLOSE_BRACKET)) depth--
    else if (depth === 0 && (c === COMMA || c === CLOSE_BRACKET)) {
      const empty = skipSpace(text, start) === i
      // `[]` has no item; any other empty place (`[,`, `,,`, `,]`) is not JSON.
      if (empty && (c === COMMA || spans.length > 0)) return undefined
      if (!empty) spans.push(start, i)
      if (c === CLOSE_BRACKET) return {spans, end: i}
      start = i + 1
    }
  }
  return undefined
}

/**
 * The "elem" array of a set or map item (`{"set": {..., "elem": [...]}}`): where its brackets are
 * and its items; undefined when the item has none, or more than one, or not in that plain shape.
 */
function elemArray(text: string, start: number, end: number): {open: number; close: number; spans: Spans} | undefined {
  let found: {open: number; close: number; spans: Spans} | undefined
  let depth = 0
  for (let i = start; i < end; i++) {
    const c = text.charCodeAt(i)
    if (c === QUOTE) {
      const close = stringEnd(text, i)
      // A key of the item's body, two objects deep: `"elem"` followed by `:` and `[`.
      if (depth === 2 && close - i + 1 === ELEM_KEY.length && text.startsWith(ELEM_KEY, i)) {
        const afterBracket = expect(text, close + 1, [':', '['])
        if (afterBracket !== undefined) {
          const open = afterBracket - 1
          const array = arraySpans(text, afterBracket)
          if (found || !array || array.end >= end) return undefined
          found = {open, close: array.end, spans: array.spans}
          i = array.end
          continue
        }
      }
      i = close
    } else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++
    else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) depth--
  }
  return found
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

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
