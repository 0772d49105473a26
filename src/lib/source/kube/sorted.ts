/** A cache of objects by key that hands out its objects sorted by key, rebuilt from what changed since it last did. */

/** Keys that came or went since the last `sorted()` up to which they are put in or taken out of the sorted keys one by one; more, and the keys are sorted again. */
const MAX_SPLICED = 64

/**
 * Objects by `namespace/name`. `sorted()` returns the same array while nothing changed, a copy with
 * the replaced objects swapped in when objects only changed, and with the objects that came or went
 * put in or taken out where their keys sort (all keys sorted again when many did, or after a clear):
 * a watch pass after one change costs no sort of the whole cluster.
 */
export class SortedObjects<T> {
  private readonly byKey = new Map<string, T>()
  private keys: string[] = []
  private list: T[] = []
  private readonly replaced = new Set<string>()
  /** Keys that came or went since the last sorted(), while few enough to splice. */
  private readonly spliced = new Set<string>()
  private reshaped = false

  get size(): number {
    return this.byKey.size
  }

  get(key: string): T | undefined {
    return this.byKey.get(key)
  }

  entries(): IterableIterator<[string, T]> {
    return this.byKey.entries()
  }

  set(key: string, object: T): void {
    // A key that came since the last sorted() is put in with whatever object it has then.
    if (!this.byKey.has(key)) this.cameOrWent(key)
    else if (!this.spliced.has(key)) this.replaced.add(key)
    this.byKey.set(key, object)
  }

  delete(key: string): boolean {
    if (!this.byKey.delete(key)) return false
    this.replaced.delete(key)
    this.cameOrWent(key)
    return true
  }

  clear(): void {
    this.byKey.clear()
    this.reshaped = true
  }

  private cameOrWent(key: string): void {
    if (this.spliced.size < MAX_SPLICED) this.spliced.add(key)
    else this.reshaped = true
  }

  /** The objects sorted by key; callers must not modify the array, which later calls may return again. */
  sorted(): readonly T[] {
    if (this.reshaped) {
      this.keys = [...this.byKey.keys()].sort()
      this.list = this.keys.map((key) => this.byKey.get(key)!)
      this.reshaped = false
    } else if (this.replaced.size + this.spliced.size > 0) {
      // A copy: whoever holds the last array (the planner compares against it) keeps it unchanged.
      this.list = [...this.list]
      for (const key of this.spliced) this.splice(key)
      for (const key of this.replaced) this.list[positionOf(this.keys, key)] = this.byKey.get(key)!
    }
    this.replaced.clear()
    this.spliced.clear()
    return this.list
  }

  /** Puts a key that came in its place among the sorted keys, or takes out one that went (and came back, maybe: then it stays). */
  private splice(key: string): void {
    const at = positionOf(this.keys, key)
    const listed = this.keys[at] === key
    const object = this.byKey.get(key)
    if (listed && object === undefined) {
      this.keys.splice(at, 1)
      this.list.splice(at, 1)
    } else if (!listed && object !== undefined) {
      this.keys.splice(at, 0, key)
      this.list.splice(at, 0, object)
    } else if (object !== undefined) this.list[at] = object
  }
}

/** Where `key` is in `keys`, sorted as sort() sorts strings: found by halving, rather than kept in a map of every key (1.4 MB at 10,000 objects of each kind). */
function positionOf(keys: readonly string[], key: string): number {
  let low = 0
  let high = keys.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (keys[middle]! < key) low = middle + 1
    else high = middle
  }
  return low
}
