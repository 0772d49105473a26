/**
 * Arrays and maps sized to their items. An array grown by push, filter or flatMap keeps room for up
 * to 16 more items (128 bytes), and a Map of one entry takes about 180 bytes; a plan or cache that
 * keeps a few such collections for each of 10,000 Mappings pays megabytes for that room
 * (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */

/**
 * `text` as one flat string. A string joined from pieces stays a tree of them in V8 until a
 * character is read (`${a},${b}` of 36 characters: 82 bytes as a tree, 56 flat): strings kept long
 * after they are made are read once here, so that V8 copies them flat and the pieces can go.
 */
export function flat(text: string): string {
  text.charCodeAt(0)
  return text
}

/** A copy of `items` that holds no room beyond them, for arrays kept long after they are built. */
export function fitted<T>(items: readonly T[]): T[] {
  return items.slice()
}

/** Past this many entries a read-only map looks keys up in a Map again rather than walking a list. */
const SMALL_MAP_SIZE = 8

/**
 * A read-only copy of `map` that holds no room: for one entry (most Mappings are on one address) an
 * object of 32 bytes, for a few (a Mapping's sets at one address) one list of keys and values, for
 * none or many `map` itself. Keys are compared as a Map compares them.
 */
export function fittedMap<K, V>(map: ReadonlyMap<K, V>): ReadonlyMap<K, V> {
  if (map.size === 0 || map.size > SMALL_MAP_SIZE) return map
  if (map.size === 1) {
    const [key, value] = map.entries().next().value!
    return new OneEntryMap(key, value)
  }
  const entries: unknown[] = []
  for (const [key, value] of map) entries.push(key, value)
  return new SmallMap<K, V>(fitted(entries))
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
    return sameValueZero(key, this.key)
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

/** A read-only map of a few entries, keys and values one after the other in one list. */
class SmallMap<K, V> implements ReadonlyMap<K, V> {
  constructor(private readonly list: readonly unknown[]) {}

  get size(): number {
    return this.list.length / 2
  }

  get(key: K): V | undefined {
    for (let i = 0; i < this.list.length; i += 2) if (sameValueZero(this.list[i], key)) return this.list[i + 1] as V
    return undefined
  }

  has(key: K): boolean {
    for (let i = 0; i < this.list.length; i += 2) if (sameValueZero(this.list[i], key)) return true
    return false
  }

  forEach(callback: (value: V, key: K, map: ReadonlyMap<K, V>) => void, thisArg?: unknown): void {
    for (let i = 0; i < this.list.length; i += 2) callback.call(thisArg, this.list[i + 1] as V, this.list[i] as K, this)
  }

  *entries(): MapIterator<[K, V]> {
    for (let i = 0; i < this.list.length; i += 2) yield [this.list[i] as K, this.list[i + 1] as V]
  }

  *keys(): MapIterator<K> {
    for (let i = 0; i < this.list.length; i += 2) yield this.list[i] as K
  }

  *values(): MapIterator<V> {
    for (let i = 0; i < this.list.length; i += 2) yield this.list[i + 1] as V
  }

  [Symbol.iterator](): MapIterator<[K, V]> {
    return this.entries()
  }
}

/** Equal as a Map compares keys: NaN equals NaN. */
function sameValueZero(a: unknown, b: unknown): boolean {
  return a === b || (a !== a && b !== b)
}
