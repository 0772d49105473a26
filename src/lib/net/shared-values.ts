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

/** The longest JSON text a table keeps a value for, in characters. */
const MAX_TEXT = 1024

/** JSON values (objects, arrays) by their JSON text. */
export class SharedValues {
  private readonly table = new Map<string, unknown>()
  private readonly limit: number

  constructor({limit = Number.POSITIVE_INFINITY}: SharedValuesOptions = {}) {
    this.limit = limit
  }

  /**
   * The value kept for `value`'s JSON text when one is (same fields in the same order, same items),
   * `prepare(value)` otherwise, kept from then on; `prepare` must give a value with the same JSON.
   * Only values parsed from JSON belong here: values that differ only in what JSON does not write
   * (an undefined field, -0 against 0) are taken for one.
   */
  share<T>(value: T, prepare: (value: T) => T = (same) => same): T {
    if (typeof value !== 'object' || value === null) return value
    const text = JSON.stringify(value)
    // The table keeps each value's text besides it: a long one (a Mapping with hundreds of allowed sources) would cost twice.
    if (text.length > MAX_TEXT) return prepare(value)
    const kept = this.table.get(text)
    if (kept !== undefined) return kept as T
    if (this.table.size >= this.limit) this.table.clear()
    // Made ready to be kept (its own parts shared) only when it is kept: most values are found.
    const ready = prepare(value)
    this.table.set(text, ready)
    return ready
  }
}

/** A frozen copy of `list` with its items frozen, for `share`: a list many holders keep, changed for one, would change for all. */
export function frozenList<T>(list: readonly T[]): T[] {
  return Object.freeze(list.map((item) => Object.freeze(item))) as T[]
}
