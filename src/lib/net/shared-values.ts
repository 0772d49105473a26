/**
 * One copy of the JSON values many kept objects repeat whole: across 10,000 cached Mappings the same
 * conditions (a first pass writes one Valid condition and one Ready condition per address, with one
 * time), the same port lists and the same address lists (docs/benchmarks.md, "Memory at 10,000
 * Mappings"). Objects given out by `share` may be held by many others at once, so nobody may modify
 * them, which is what the informer caches already ask of whoever reads them.
 */

/** How a table keeps its values. */
export interface SharedValuesOptions {
  /** At most this many values; a full table starts again empty, so it never holds more, whatever comes and goes. */
  limit?: number
}

/** JSON values (objects, arrays) by their JSON text. */
export class SharedValues {
  private readonly table = new Map<string, unknown>()
  private readonly limit: number

  constructor({limit = Number.POSITIVE_INFINITY}: SharedValuesOptions = {}) {
    this.limit = limit
  }

  /**
   * The value kept for `value`'s JSON text when one is (same fields in the same order, same items),
   * `value` itself otherwise. Only values parsed from JSON belong here: values that differ only in
   * what JSON does not write (an undefined field, -0 against 0) are taken for one.
   */
  share<T>(value: T): T {
    if (typeof value !== 'object' || value === null) return value
    const text = JSON.stringify(value)
    const kept = this.table.get(text)
    if (kept !== undefined) return kept as T
    if (this.table.size >= this.limit) this.table.clear()
    this.table.set(text, value)
    return value
  }
}
