/**
 * Arrays and maps sized to their items. An array grown by push, filter or flatMap keeps room for up
 * to 16 more items (128 bytes), and a Map of one entry takes about 180 bytes; a plan or cache that
 * keeps a few such collections for each of 10,000 Mappings pays megabytes for that room
 * (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */

/** A copy of `items` that holds no room beyond them, for arrays kept long after they are built. */
export function fitted<T>(items: readonly T[]): T[] {
  return items.slice()
}

/** `map` itself, or for a map of one entry (most Mappings are on one address) a read-only one of 32 bytes. */
export function fittedMap<K, V>(map: ReadonlyMap<K, V>): ReadonlyMap<K, V> {
  if (map.size !== 1) return map
  const [key, value] = map.entries().next().value!
  return new OneEntryMap(key, value)
}

/** A read-only map of exactly one entry. */
class OneEntryMap<K, V> implements ReadonlyMap<K, V> {
  constructor(
    private readonly key: K,
    private readonly value: V,
  ) {}

  get size(): number {
    return 1
  }

  get(key: K): V | undefined {
    return this.has(key) ? this.value : undefined
  }

  has(key: K): boolean {
    // SameValueZero, as a Map compares keys.
    return key === this.key || (key !== key && this.key !== this.key)
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    callback.call(thisArg, this.value, this.key, this)
  }

  *entries(): MapIterator<[K, V]> {
    yield [this.key, this.value]
  }

  *keys(): MapIterator<K> {
    yield this.key
  }

  *values(): MapIterator<V> {
    yield this.value
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries()
  }
}
