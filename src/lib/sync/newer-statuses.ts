/**
 * Object versions an allocator knows to be newer than what its watch cache shows: the statuses it
 * has just written, and on taking over the allocator Lease, what a fresh list says. Until the cache
 * catches up, the allocator decides from these, so that it never hands out an address (or port) it
 * recorded a moment ago, or that the previous allocator recorded, only because the watch has not
 * brought it yet. LoadBalancer Services use it; any namespaced kind whose status records allocations can.
 */
import type {ObjectMeta} from '../mapping/types.js'

/** What is kept of an object: its names and version. */
interface Versioned {
  metadata: ObjectMeta
}

interface Note<T extends Versioned> {
  object: T
  /** The cached version it was noted against; undefined when the cache had no such Service. */
  supersedes: string | undefined
  at: number
}

function keyOf(object: Versioned): string {
  return `${object.metadata.namespace}/${object.metadata.name}`
}

const INTEGER = /^\d+$/

/**
 * Whether the noted version is still ahead of the cached one. Kubernetes calls resourceVersions opaque,
 * but every API server backed by etcd gives integers that grow with every write, which say which is
 * newer even when the cache jumped over versions (a relist). For versions that are not integers, a
 * note stands in only while the cache shows exactly the version it was noted against.
 */
function ahead(note: Note<Versioned>, cached: string | undefined): boolean {
  const noted = note.object.metadata.resourceVersion
  if (noted !== undefined && cached !== undefined && INTEGER.test(noted) && INTEGER.test(cached)) return BigInt(noted) > BigInt(cached)
  return note.supersedes !== undefined && cached === note.supersedes
}

export class NewerStatuses<T extends Versioned> {
  private readonly notes = new Map<string, Note<T>>()

  /** @param maxAgeMs how long an object the cache has never shown is counted on the API's word alone */
  constructor(private readonly maxAgeMs: number) {}

  /** `object`, just read or written, stands in for the cached one (version `supersedes`, or none) until the cache catches up. */
  note(object: T, supersedes: string | undefined, at: number): void {
    this.notes.set(keyOf(object), {object, supersedes, at})
  }

  /** After a fresh list: notes each listed object whose version differs from the cache's, or that the cache lacks. */
  noteListed(listed: readonly T[], cached: readonly T[], at: number): void {
    const versions = new Map(cached.map((service) => [keyOf(service), service.metadata.resourceVersion]))
    for (const service of listed) {
      const key = keyOf(service)
      if (!versions.has(key)) this.note(service, undefined, at)
      else if (versions.get(key) !== service.metadata.resourceVersion) this.note(service, versions.get(key), at)
    }
  }

  /** The cached objects with the noted newer versions in their place; notes the cache has caught up with, or whose object was deleted, are dropped. */
  apply(cached: readonly T[], now: number): readonly T[] {
    if (this.notes.size === 0) return cached
    const result = cached.map((service) => {
      const key = keyOf(service)
      const note = this.notes.get(key)
      if (note === undefined) return service
      if (ahead(note, service.metadata.resourceVersion)) return note.object
      this.notes.delete(key)
      return service
    })
    const present = new Set(cached.map(keyOf))
    for (const [key, note] of this.notes) {
      if (present.has(key)) continue
      // Known to the API but not yet to the cache, it counts for a while; gone from the cache after it was there, it was deleted.
      if (note.supersedes === undefined && now - note.at < this.maxAgeMs) result.push(note.object)
      else this.notes.delete(key)
    }
    return result
  }

  /** How many objects the cache is known to be behind on. */
  get size(): number {
    return this.notes.size
  }
}
