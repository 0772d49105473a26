/**
 * Arrays sized to their items. An array grown by push, filter or flatMap keeps room for up to 16
 * more items (128 bytes); a plan or cache that keeps a few such arrays for each of 10,000 Mappings
 * pays megabytes for that room (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */

/** A copy of `items` that holds no room beyond them, for arrays kept long after they are built. */
export function fitted<T>(items: readonly T[]): T[] {
  return items.slice()
}
