/**
 * What a long-lived index keeps, counted rather than weighed: the entries of the Maps and Sets among
 * an object's own fields, of the Maps and Sets those Maps hold as values, and of those held by the
 * instances of classes among its fields (an index kept in a class of its own, such as a NameMap). A heap measurement
 * depends on V8's layout and on when it collects; a count of entries is the same in every run.
 */

/** Calls `visit` on each field of a class instance among `value` (not a Map, a Set, an array or a plain object), once per instance. */
function intoInstances(value: unknown, seen: WeakSet<object>, visit: (field: unknown) => void): void {
  if (typeof value !== 'object' || value === null || value instanceof Map || value instanceof Set || Array.isArray(value) || seen.has(value)) return
  const prototype = Object.getPrototypeOf(value) as object | null
  if (prototype === null || prototype === Object.prototype) return
  seen.add(value)
  for (const field of Object.values(value)) visit(field)
}

/** The entries of the Maps and Sets `object` holds in its own fields (nested Maps' and class instances' included). */
export function heldEntries(object: object): number {
  let entries = 0
  const seen = new WeakSet<object>()
  const visit = (value: unknown): void => {
    intoInstances(value, seen, visit)
    if (value instanceof Set) entries += value.size
    if (!(value instanceof Map)) return
    entries += value.size
    for (const inner of value.values()) visit(inner)
  }
  for (const value of Object.values(object)) visit(value)
  return entries
}

/** The string keys of the Maps `object` holds in its own fields (nested Maps' and class instances' included). */
export function heldKeys(object: object): string[] {
  const keys: string[] = []
  const seen = new WeakSet<object>()
  const visit = (value: unknown): void => {
    intoInstances(value, seen, visit)
    if (!(value instanceof Map)) return
    for (const [key, inner] of value) {
      if (typeof key === 'string') keys.push(key)
      visit(inner)
    }
  }
  for (const value of Object.values(object)) visit(value)
  return keys
}
