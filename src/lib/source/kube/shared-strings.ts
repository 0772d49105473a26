/**
 * One copy of the strings that the cache's objects repeat. Parsed JSON gets a string of its own
 * for every value longer than a few characters, and across 10,000 Mappings the same values come
 * back again and again: the time every status was written, the conditions' messages, the
 * addresses Mappings share, the allow-lists teams copy. Values unique to one object (uids, pod
 * IPs, names) are not passed here: a table of them would cost more than it saves.
 */

/** Strings by their text, up to `limit` of them; a full table starts again empty, so it never holds more than that, whatever comes and goes. */
export class SharedStrings {
  private readonly table = new Map<string, string>()

  constructor(private readonly limit = 4096) {}

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
