/** A cache of objects by namespace and name that hands out its objects sorted by `namespace/name`, rebuilt from what changed since it last did. */
import {fitted} from '../../net/fitted.js'

/** Keys that came or went since the last `sorted()` up to which they are put in or taken out of the sorted list one by one; more, and the list is sorted again. */
const MAX_SPLICED = 64

/** What the cache files an object by: its metadata's namespace (none for a cluster-scoped object) and name. */
export interface Named {
  metadata: {namespace?: string; name?: string}
}

/**
 * Objects by namespace and name. `sorted()` returns the same array while nothing changed, a copy with
 * the replaced objects swapped in when objects only changed, and with the objects that came or went
 * put in or taken out where their keys sort (all sorted again when many did, or after a clear):
 * a watch pass after one change costs no sort of the whole cluster.
 *
 * Objects are filed under their own namespace and name strings, one map per namespace: a map of
 * `namespace/name` keys held a string of its own for every object (57 bytes each, 1.7 MB at 10,000
 * objects of each kind; docs/benchmarks.md, "The informer caches as compact records").
 */
export class SortedObjects<T extends Named> {
  private readonly byNamespace = new Map<string, Map<string, T>>()
  private count = 0
  private list: T[] = []
  /** `namespace/name` of the objects replaced since the last sorted(). */
  private readonly replaced = new Set<string>()
  /** `namespace/name` of the keys that came or went since the last sorted(), while few enough to splice. */
  private readonly spliced = new Set<string>()
  private reshaped = false

  get size(): number {
    return this.count
  }

  get(namespace: string, name: string): T | undefined {
    return this.byNamespace.get(namespace)?.get(name)
  }

  /** Every object, in no particular order. */
  *values(): IterableIterator<T> {
    for (const names of this.byNamespace.values()) yield* names.values()
  }

  /** Files `object` under its namespace and name, in place of the object there before. */
  set(object: T): void {
    const [namespace, name] = keyOf(object)
    let names = this.byNamespace.get(namespace)
    if (names === undefined) this.byNamespace.set(namespace, (names = new Map()))
    const key = `${namespace}/${name}`
    // A key that came since the last sorted() is put in with whatever object it has then.
    if (!names.has(name)) {
      this.count++
      this.cameOrWent(key)
    } else {
      if (!this.reshaped && !this.spliced.has(key)) this.replaced.add(key)
      // Filed again under the new object's own name: a map keeps the key it was first given, the old object's string.
      names.delete(name)
    }
    names.set(name, object)
  }

  delete(namespace: string, name: string): boolean {
    const names = this.byNamespace.get(namespace)
    if (names === undefined || !names.delete(name)) return false
    if (names.size === 0) this.byNamespace.delete(namespace)
    this.count--
    const key = `${namespace}/${name}`
    this.replaced.delete(key)
    this.cameOrWent(key)
    return true
  }

  clear(): void {
    this.byNamespace.clear()
    this.count = 0
    this.reshaped = true
  }

  private cameOrWent(key: string): void {
    if (this.reshaped) return
    if (this.spliced.size < MAX_SPLICED) this.spliced.add(key)
    else this.reshaped = true
  }

  /** The objects sorted by `namespace/name`; callers must not modify the array, which later calls may return again. */
  sorted(): readonly T[] {
    if (this.reshaped) {
      const list: T[] = []
      for (const namespace of [...this.byNamespace.keys()].sort(compareNamespaces)) {
        const names = this.byNamespace.get(namespace)!
        for (const name of [...names.keys()].sort()) list.push(names.get(name)!)
      }
      this.list = fitted(list)
      this.reshaped = false
    } else if (this.replaced.size + this.spliced.size > 0) {
      // A copy: whoever holds the last array (the planner compares against it) keeps it unchanged.
      this.list = [...this.list]
      for (const key of this.spliced) this.splice(...split(key))
      for (const key of this.replaced) {
        const [namespace, name] = split(key)
        this.list[positionOf(this.list, namespace, name)] = this.get(namespace, name)!
      }
    }
    this.replaced.clear()
    this.spliced.clear()
    return this.list
  }

  /** Puts an object that came in its place in the sorted list, or takes out one that went (and came back, maybe: then it stays). */
  private splice(namespace: string, name: string): void {
    const at = positionOf(this.list, namespace, name)
    const there = this.list[at]
    const listed = there !== undefined && compareKeys(keyOf(there), namespace, name) === 0
    const object = this.get(namespace, name)
    if (listed && object === undefined) this.list.splice(at, 1)
    else if (!listed && object !== undefined) this.list.splice(at, 0, object)
    else if (object !== undefined) this.list[at] = object
  }
}

function keyOf(object: Named): [namespace: string, name: string] {
  return [object.metadata.namespace ?? '', object.metadata.name ?? '']
}

/** A `namespace/name` key taken apart: neither a namespace nor a name holds a slash. */
function split(key: string): [namespace: string, name: string] {
  const slash = key.indexOf('/')
  return [key.slice(0, slash), key.slice(slash + 1)]
}

const SLASH = 0x2f

/**
 * Namespaces in the order their `namespace/` keys sort, as sort() sorts strings (by UTF-16 code
 * unit): where one namespace begins the other, the slash decides against the other's next character.
 */
function compareNamespaces(a: string, b: string): number {
  const common = Math.min(a.length, b.length)
  for (let i = 0; i < common; i++) {
    const difference = a.charCodeAt(i) - b.charCodeAt(i)
    if (difference !== 0) return difference
  }
  if (a.length === b.length) return 0
  return a.length < b.length ? SLASH - b.charCodeAt(common) : a.charCodeAt(common) - SLASH
}

/** `[namespace, name]` against `namespace/name`, in the order of their keys. */
function compareKeys([namespace, name]: readonly [string, string], otherNamespace: string, otherName: string): number {
  const byNamespace = compareNamespaces(namespace, otherNamespace)
  if (byNamespace !== 0) return byNamespace
  return name < otherName ? -1 : name > otherName ? 1 : 0
}

/** Where `namespace/name` is in `list`, sorted by key: found by halving, rather than kept in a map of every key. */
function positionOf(list: readonly Named[], namespace: string, name: string): number {
  let low = 0
  let high = list.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (compareKeys(keyOf(list[middle]!), namespace, name) < 0) low = middle + 1
    else high = middle
  }
  return low
}
