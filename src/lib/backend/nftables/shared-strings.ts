/**
 * One copy of each string a read of nft's listing keeps. Parsed element by element, the listing's
 * 100,000 elements would each bring their own copy of the addresses, ports and comments they share
 * with others (a pod's address and its Mappings' comment are in two sets, an endpoint's address in
 * hundreds of elements): 18 MB of duplicates at 10,000 Mappings (docs/benchmarks.md, "Memory at
 * 10,000 Mappings").
 */
export class SharedStrings {
  private readonly strings = new Map<string, string>()

  /** The string equal to `text` kept first; `text` itself, copied, when none is. */
  get(text: string): string {
    const kept = this.strings.get(text)
    if (kept !== undefined) return kept
    const copy = detached(text)
    this.strings.set(copy, copy)
    return copy
  }
}

/**
 * A copy of `text` that holds no reference to the text it was taken from. V8 makes a string that
 * JSON.parse takes out of a longer one (a comment, an address of 13 characters or more) a slice of
 * it, which keeps the whole of it alive: 100,000 comments kept the element texts they came from
 * (and the slices cost more than the comments). A string decoded from bytes is a string of its own;
 * the listing was decoded from UTF-8, so the round trip changes nothing.
 */
function detached(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8')
}
