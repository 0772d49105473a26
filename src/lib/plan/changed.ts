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
