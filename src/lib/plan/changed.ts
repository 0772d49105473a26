/** What changed between two lists of the same kind of object, by identity. */

/** Objects of `after` that are not in `before`, and the other way round; unchanged objects are the very same. */
export function changedObjects<T>(before: readonly T[], after: readonly T[]): {added: T[]; removed: T[]} {
  if (before === after) return {added: [], removed: []}
  // A source replaces a changed object where it was: most of both lists lines up.
  let start = 0
  while (start < before.length && start < after.length && before[start] === after[start]) start++
  let endBefore = before.length
  let endAfter = after.length
  while (endBefore > start && endAfter > start && before[endBefore - 1] === after[endAfter - 1]) {
    endBefore--
    endAfter--
  }
  const left = new Set(before.slice(start, endBefore))
  const added: T[] = []
  for (let i = start; i < endAfter; i++) if (!left.delete(after[i]!)) added.push(after[i]!)
  return {added, removed: [...left]}
}

/**
 * How many items of a list are of each kind, brought up to date from the items that changed since
 * the list it was last given (items are replaced when they change, never edited): a daemon's pass
 * after one change counts that change, not the 10,000 verdicts around it.
 */
export class KindCounts<T, K> {
  private items: readonly T[] = []
  private readonly counts = new Map<K, number>()

  constructor(private readonly kindOf: (item: T) => K) {}

  /** How many of `items` are of `kind`. */
  count(items: readonly T[], kind: K): number {
    this.follow(items)
    return this.counts.get(kind) ?? 0
  }

  private follow(items: readonly T[]): void {
    const {added, removed} = changedObjects(this.items, items)
    for (const item of removed) this.add(this.kindOf(item), -1)
    for (const item of added) this.add(this.kindOf(item), 1)
    this.items = items
  }

  private add(kind: K, by: number): void {
    this.counts.set(kind, (this.counts.get(kind) ?? 0) + by)
  }
}
