/**
 * One copy of the strings many kept objects repeat. Parsed JSON gets a string of its own for every
 * value longer than a few characters: across 10,000 Mappings the cache's objects repeat the time
 * every status was written, the conditions' messages, the addresses Mappings share
 * (docs/benchmarks.md, "Memory at 10,000 Mappings"). Values unique to one object (uids, pod IPs,
 * names) are not passed here: a table of them would cost more than it saves.
 */

/** How a table keeps its strings. */
export interface SharedStringsOptions {
  /** At most this many strings; a full table starts again empty, so it never holds more, whatever comes and goes. */
  limit?: number
}

/** Strings by their text. */
export class SharedStrings {
  private readonly table = new Map<string, string>()
  private readonly limit: number

  constructor({limit = Number.POSITIVE_INFINITY}: SharedStringsOptions = {}) {
    this.limit = limit
  }

  /** The copy of `value` already kept when it is a string seen before; `value` itself otherwise. */
  share<T>(value: T): T {
    if (typeof value !== 'string') return value
    const kept = this.table.get(value)
    if (kept !== undefined) return kept as T
    if (this.table.size >= this.limit) this.table.clear()
    this.table.set(value, value)
    return value
  }

  /** A copy of `list` with its strings shared; anything that is not an array is returned as it is. */
  shareAll<T>(list: T): T {
    return Array.isArray(list) ? (list.map((item: unknown) => this.share(item)) as T) : list
  }

  /** A copy of `object` whose `fields`, where it has them, hold shared strings; the fields keep their order. */
  shareFields<T>(object: T, fields: readonly string[]): T {
    if (typeof object !== 'object' || object === null || Array.isArray(object)) return object
    const copy = {...object} as Record<string, unknown>
    for (const field of fields) if (field in copy) copy[field] = this.share(copy[field])
    return copy as T
  }
}

/**
 * A copy of `text` that holds no reference to the text it was taken from. V8 makes a string cut
 * out of a longer one (13 characters or more) a slice of it, which keeps the whole of it alive:
 * 100,000 comments of the nft listing once kept the element texts they came from. A string decoded from
 * bytes is a string of its own; the texts kept are decoded from UTF-8, so the round trip changes nothing.
 */
export function detached(text: string): string {
  return Buffer.from(text, 'utf8').toString('utf8')
}
