/**
 * What a long-lived index keeps, counted rather than weighed: the entries of the Maps and Sets among
 * an object's own fields, and of the Maps and Sets those Maps hold as values. A heap measurement
 * depends on V8's layout and on when it collects; a count of entries is the same in every run.
 */

/** The entries of the Maps and Sets `object` holds in its own fields (nested Maps' included). */
export function heldEntries(object: object): number {
  let entries = 0
  const visit = (value: unknown): void => {
    if (value instanceof Set) entries += value.size
    if (!(value instanceof Map)) return
    entries += value.size
    for (const inner of value.values()) visit(inner)
  }
  for (const value of Object.values(object)) visit(value)
  return entries
}

/** The string keys of the Maps `object` holds in its own fields (nested Maps' included). */
export function heldKeys(object: object): string[] {
  const keys: string[] = []
  const visit = (value: unknown): void => {
    if (!(value instanceof Map)) return
    for (const [key, inner] of value) {
      if (typeof key === 'string') keys.push(key)
      visit(inner)
    }
  }
  for (const value of Object.values(object)) visit(value)
  return keys
}
