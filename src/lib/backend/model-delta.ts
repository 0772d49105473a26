/** Which NatMappings changed between two models, by identity: what a renderer that memoizes per Mapping renders again. */
import type {NatMapping} from '../plan/model.js'
import {compareNames} from '../plan/order.js'

/** What changed between two lists of objects: those only the previous one holds at their place, and those only the next one holds. */
export interface ListDelta<T> {
  removed: T[]
  added: T[]
}

/**
 * One walk over both lists (sorted by `compare`, as the planner gives them) comparing objects, not
 * contents: a Mapping the planner kept is the same object. An object that moved counts as both
 * removed and added, which a caller that removes before it adds handles like any change; undefined
 * when more than `limit` objects differ, where rendering everything costs less.
 */
export function listDelta<T>(previous: readonly T[], next: readonly T[], compare: (a: T, b: T) => number, limit: number): ListDelta<T> | undefined {
  const removed: T[] = []
  const added: T[] = []
  let i = 0
  let j = 0
  while (i < previous.length && j < next.length) {
    const before = previous[i]!
    const after = next[j]!
    if (before === after) {
      i++
      j++
      continue
    }
    const order = compare(before, after)
    if (order <= 0) removed.push(previous[i++]!)
    if (order >= 0) added.push(next[j++]!)
    if (removed.length + added.length > limit) return undefined
  }
  while (i < previous.length) removed.push(previous[i++]!)
  while (j < next.length) added.push(next[j++]!)
  return removed.length + added.length > limit ? undefined : {removed, added}
}

/** The NatMappings that differ between two models' lists (sorted by namespace/name). */
export function mappingDelta(previous: readonly NatMapping[], next: readonly NatMapping[], limit: number): ListDelta<NatMapping> | undefined {
  return listDelta(previous, next, compareNames, limit)
}

/** Whether two lists hold the same objects in the same order. */
export function sameObjects<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a === b) return true
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}
