/** A cache of objects by key that hands out its objects sorted by key, rebuilt from what changed since it last did. */

/**
 * Objects by `namespace/name`. `sorted()` returns the same array while nothing changed, a copy with
 * the replaced objects swapped in when objects only changed, and sorts the keys again only when an
 * object came or went: a watch pass after one change costs no sort of the whole cluster.
 */
export class SortedObjects<T> {
  private readonly byKey = new Map<string, T>()
  private keys: string[] = []
  private list: T[] = []
  private position = new Map<string, number>()
  private readonly replaced = new Set<string>()
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
    if (this.byKey.has(key)) this.replaced.add(key)
    else this.reshaped = true
    this.byKey.set(key, object)
  }

  delete(key: string): boolean {
    if (!this.byKey.delete(key)) return false
    this.reshaped = true
    return true
  }

  clear(): void {
    this.byKey.clear()
    this.reshaped = true
  }

  /** The objects sorted by key; callers must not modify the array, which later calls may return again. */
  sorted(): readonly T[] {
    if (this.reshaped) {
      this.keys = [...this.byKey.keys()].sort()
      this.list = this.keys.map((key) => this.byKey.get(key)!)
      this.position = new Map(this.keys.map((key, i) => [key, i]))
      this.reshaped = false
    } else if (this.replaced.size > 0) {
      // A copy: whoever holds the last array (the planner compares against it) keeps it unchanged.
      this.list = [...this.list]
      for (const key of this.replaced) this.list[this.position.get(key)!] = this.byKey.get(key)!
    }
    this.replaced.clear()
    return this.list
  }
}
