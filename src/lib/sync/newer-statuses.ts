/**
 * Service versions the allocator knows to be newer than what its watch cache shows: the statuses it
 * has just written, and on taking over the allocator Lease, what a fresh list of Services says. Until
 * the cache catches up, the allocator decides from these, so that it never hands out an address it
 * recorded a moment ago (or that the previous allocator recorded) only because the watch has not
 * brought it yet.
 */
import type {ServiceResource} from '../mapping/types.js'

interface Note {
  service: ServiceResource
  /** The cached version it was noted against; undefined when the cache had no such Service. */
  supersedes: string | undefined
  at: number
}

function keyOf(service: ServiceResource): string {
  return `${service.metadata.namespace}/${service.metadata.name}`
}

const INTEGER = /^\d+$/

/**
 * Whether the noted version is still ahead of the cached one. Kubernetes calls resourceVersions opaque,
 * but every API server backed by etcd gives integers that grow with every write, which say which is
 * newer even when the cache jumped over versions (a relist). For versions that are not integers, a
 * note stands in only while the cache shows exactly the version it was noted against.
 */
function ahead(note: Note, cached: string | undefined): boolean {
  const noted = note.service.metadata.resourceVersion
  if (noted !== undefined && cached !== undefined && INTEGER.test(noted) && INTEGER.test(cached)) return BigInt(noted) > BigInt(cached)
  return note.supersedes !== undefined && cached === note.supersedes
}

export class NewerStatuses {
  private readonly notes = new Map<string, Note>()

  /** @param maxAgeMs how long a Service the cache has never shown is counted on the API's word alone */
  constructor(private readonly maxAgeMs: number) {}

  /** `service`, just read or written, stands in for the cached one (version `supersedes`, or none) until the cache catches up. */
  note(service: ServiceResource, supersedes: string | undefined, at: number): void {
    this.notes.set(keyOf(service), {service, supersedes, at})
  }

  /** After a fresh list: notes each listed Service whose version differs from the cache's, or that the cache lacks. */
  noteListed(listed: readonly ServiceResource[], cached: readonly ServiceResource[], at: number): void {
    const versions = new Map(cached.map((service) => [keyOf(service), service.metadata.resourceVersion]))
    for (const service of listed) {
      const key = keyOf(service)
      if (!versions.has(key)) this.note(service, undefined, at)
      else if (versions.get(key) !== service.metadata.resourceVersion) this.note(service, versions.get(key), at)
    }
  }

  /** The cached Services with the noted newer versions in their place; notes the cache has caught up with, or whose Service was deleted, are dropped. */
  apply(cached: readonly ServiceResource[], now: number): readonly ServiceResource[] {
    if (this.notes.size === 0) return cached
    const result = cached.map((service) => {
      const key = keyOf(service)
      const note = this.notes.get(key)
      if (note === undefined) return service
      if (ahead(note, service.metadata.resourceVersion)) return note.service
      this.notes.delete(key)
      return service
    })
    const present = new Set(cached.map(keyOf))
    for (const [key, note] of this.notes) {
      if (present.has(key)) continue
      // Known to the API but not yet to the cache, it counts for a while; gone from the cache after it was there, it was deleted.
      if (note.supersedes === undefined && now - note.at < this.maxAgeMs) result.push(note.service)
      else this.notes.delete(key)
    }
    return result
  }

  /** How many Services the cache is known to be behind on. */
  get size(): number {
    return this.notes.size
  }
}
