/**
 * The items of nft's JSON listing (`{"nftables": [ITEM, ...]}`), each parsed on its own. At 10,000
 * Mappings the listing is about 15 MB; parsed whole, its tree is several times that and all of it is
 * alive at once, while parsed item by item only one set's tree is, the rest already turned into the
 * state (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */

// JSON's own whitespace only: text that JSON.parse would refuse must not pass here.
const OPENING = /^[ \t\n\r]*\{[ \t\n\r]*"nftables"[ \t\n\r]*:[ \t\n\r]*\[/
const CLOSING = /^\][ \t\n\r]*\}[ \t\n\r]*$/

/**
 * The items of `text`, each parsed when the iteration reaches it (an item that is not JSON throws
 * there); undefined when `text` is not exactly one object holding the "nftables" array, which is
 * left to JSON.parse of the whole text.
 */
export function nftJsonItems(text: string): Iterable<unknown> | undefined {
  const spans = itemSpans(text)
  return spans && parseEach(text, spans)
}

function* parseEach(text: string, spans: [number, number][]): Iterable<unknown> {
  for (const [start, end] of spans) {
    try {
      yield JSON.parse(text.slice(start, end)) as unknown
    } catch (error) {
      if (error instanceof SyntaxError) throw new Error('nft -j list table: output is not JSON', {cause: error})
      throw error
    }
  }
}

/** Where each item of the array is in `text`, found by brackets and strings alone. */
function itemSpans(text: string): [number, number][] | undefined {
  const opening = OPENING.exec(text)
  if (!opening) return undefined
  const spans: [number, number][] = []
  let start = opening[0].length
  let depth = 0
  let inString = false
  for (let i = start; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === BACKSLASH) i++
      else if (c === QUOTE) inString = false
      continue
    }
    if (c === QUOTE) inString = true
    else if (c === OPEN_BRACE || c === OPEN_BRACKET) depth++
    else if (depth > 0 && (c === CLOSE_BRACE || c === CLOSE_BRACKET)) depth--
    else if (depth === 0 && (c === COMMA || c === CLOSE_BRACKET)) {
      const empty = !/[^ \t\n\r]/.test(text.slice(start, i))
      // `[]` has no item; any other empty place (`[,`, `,,`, `,]`) is not JSON.
      if (empty && (c === COMMA || spans.length > 0)) return undefined
      if (!empty) spans.push([start, i])
      if (c === CLOSE_BRACKET) return CLOSING.test(text.slice(i)) ? spans : undefined
      start = i + 1
    }
  }
  return undefined
}

const QUOTE = 0x22
const BACKSLASH = 0x5c
const COMMA = 0x2c
const OPEN_BRACE = 0x7b
const CLOSE_BRACE = 0x7d
const OPEN_BRACKET = 0x5b
const CLOSE_BRACKET = 0x5d
