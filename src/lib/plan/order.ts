/** Orderings the planner relies on; none depends on the locale or on the order objects arrive in. */
import type {ObjectMeta} from '../mapping/types.js'

interface HasMetadata {
  metadata: ObjectMeta
}

/** Plain code-unit order, the one order smartnat sorts names and entries by. */
// localeCompare would make the plan, and the kernel state, depend on the host's locale.
export function compareText(a: string, b: string): number {
  if (a === b) return 0
  return a < b ? -1 : 1
}

/** Namespace and name of an object that may not have been validated yet; absent or non-text parts are "". */
export function namesOf(object: HasMetadata): {namespace: string; name: string} {
  const {namespace, name} = object.metadata ?? {}
  return {namespace: typeof namespace === 'string' ? namespace : '', name: typeof name === 'string' ? name : ''}
}

/** Orders namespaced things by namespace, then name. */
export function compareNames(a: {namespace: string; name: string}, b: {namespace: string; name: string}): number {
  return compareText(a.namespace, b.namespace) || compareText(a.name, b.name)
}

/** Orders objects by metadata namespace, then name. */
export function compareByName(a: HasMetadata, b: HasMetadata): number {
  return compareNames(namesOf(a), namesOf(b))
}

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

// A missing or unreadable timestamp sorts after every real one, so such an object never takes
// an endpoint away from a Mapping that has a proper age.
/** When `object` was created, in ms since the epoch; +Infinity when its timestamp is missing or unreadable. */
export function createdAt(object: HasMetadata): number {
  const text = object.metadata?.creationTimestamp
  if (typeof text !== 'string' || !RFC3339.test(text)) return Number.POSITIVE_INFINITY
  const millis = Date.parse(text)
  return Number.isNaN(millis) ? Number.POSITIVE_INFINITY : millis
}

/** Oldest first (creationTimestamp), then namespace/name: who wins a contested endpoint or pod IP. */
export function compareAge(a: HasMetadata, b: HasMetadata): number {
  const ta = createdAt(a)
  const tb = createdAt(b)
  if (ta !== tb) return ta < tb ? -1 : 1
  return compareByName(a, b)
}

/** `items` in compareAge order of their objects; each timestamp is read once, not once per comparison. */
export function sortOldestFirst<T>(items: readonly T[], objectOf: (item: T) => HasMetadata): T[] {
  const keyed = items.map((item) => {
    const object = objectOf(item)
    return {item, at: createdAt(object), ...namesOf(object)}
  })
  keyed.sort((a, b) => (a.at !== b.at ? (a.at < b.at ? -1 : 1) : compareNames(a, b)))
  return keyed.map(({item}) => item)
}

// resourceVersion is opaque, but every API server in use issues decimal counters; longer digit
// strings are larger numbers.
function compareResourceVersion(a: string | undefined, b: string | undefined): number {
  const ra = a ?? ''
  const rb = b ?? ''
  if (/^\d+$/.test(ra) && /^\d+$/.test(rb) && ra.length !== rb.length) return ra.length - rb.length
  return compareText(ra, rb)
}

/**
 * Keeps one object per namespace/name (the same manifest given twice, or a relist racing a watch):
 * the highest resourceVersion wins, then the larger serialized form, so any input order gives the
 * same choice. Returns the survivors sorted by namespace/name.
 */
export function dedupeByName<T extends HasMetadata>(objects: readonly T[]): T[] {
  // Keyed by namespace, then name: names are not validated yet, and "a/b" + "c" must not collide with "a" + "b/c".
  const kept = new Map<string, Map<string, {object: T; namespace: string; name: string}>>()
  const survivors: {object: T; namespace: string; name: string}[] = []
  for (const object of objects) {
    const {namespace, name} = namesOf(object)
    const names = kept.get(namespace) ?? new Map<string, {object: T; namespace: string; name: string}>()
    kept.set(namespace, names)
    const current = names.get(name)
    if (!current) {
      const entry = {object, namespace, name}
      names.set(name, entry)
      survivors.push(entry)
    } else if (preferLater(current.object, object)) {
      current.object = object
    }
  }
  return survivors.sort(compareNames).map(({object}) => object)
}

function preferLater(current: HasMetadata, candidate: HasMetadata): boolean {
  const byVersion = compareResourceVersion(current.metadata?.resourceVersion, candidate.metadata?.resourceVersion)
  if (byVersion !== 0) return byVersion < 0
  return compareText(JSON.stringify(current), JSON.stringify(candidate)) < 0
}
