/**
 * What a pass depends on in a snapshot: every Mapping's spec and identity, and the Services and
 * EndpointSlices that Mappings name. A cluster's other Services and EndpointSlices change all the
 * time (every rollout, every scaled Deployment), and every status smartnat writes comes back as a
 * changed Mapping; none of that can change a rule or a status, so the watch loop skips a pass whose
 * inputs are those of the last pass.
 */
import {SERVICE_NAME_LABEL, type MappingResource} from '../mapping/types.js'
import {changedObjects} from '../plan/changed.js'
import {plannedPart} from '../plan/memo.js'
import {NameMap} from '../net/name-map.js'
import type {Snapshot} from '../plan/model.js'

/** A namespace and a name, when both are strings (they are not validated here). */
type At = readonly [namespace: string, name: string]

function at(namespace: unknown, name: unknown): At | undefined {
  return typeof namespace === 'string' && typeof name === 'string' ? [namespace, name] : undefined
}

function namedBy(mapping: MappingResource): At | undefined {
  return at(mapping.metadata?.namespace, mapping.spec?.serviceName)
}

/**
 * The inputs of the last settled pass, compared with a new snapshot by what changed between the
 * two: a pass after one change looks at that change, not at the whole cluster.
 */
export class SettledInputs {
  private snapshot: Snapshot | undefined
  /**
   * How many of the settled snapshot's Mappings name each Service, by namespace, then name: keyed by
   * the Mappings' own strings, not a `namespace/name` string made per Service (0.3 MB at 10,000).
   */
  private readonly named = new NameMap<number>()
  /** The Mappings `named` counts (kept after an unsettle, to count the next settled ones from). */
  private counted: readonly MappingResource[] = []

  /** Takes `snapshot` as what the last pass planned from, its statuses written. */
  settle(snapshot: Snapshot): void {
    const {added, removed} = changedObjects(this.counted, snapshot.mappings)
    for (const mapping of removed) this.count(namedBy(mapping), -1)
    for (const mapping of added) this.count(namedBy(mapping), 1)
    this.counted = snapshot.mappings
    this.snapshot = snapshot
  }

  /** Nothing is settled: the next pass runs whatever it is given. */
  unsettle(): void {
    this.snapshot = undefined
  }

  /**
   * True when a pass over `snapshot` would plan what the settled one did. Services and
   * EndpointSlices must be the very same objects (a source replaces an object that changed, it never
   * edits one); a Mapping may be a new object whose spec, names, age and generation are unchanged.
   * Then `snapshot` stands for the settled one, so that the next check looks at what changed after
   * it: 10,000 statuses coming back one by one cost 10,000 small checks, not 10,000 growing ones.
   */
  same(snapshot: Snapshot): boolean {
    if (!this.equivalent(snapshot)) return false
    // Its Mappings name what the settled ones named: the counts hold for them.
    this.snapshot = snapshot
    this.counted = snapshot.mappings
    return true
  }

  private equivalent(snapshot: Snapshot): boolean {
    const settled = this.snapshot
    if (settled === undefined) return false
    const mappings = changedObjects(settled.mappings, snapshot.mappings)
    if (mappings.added.length !== mappings.removed.length) return false
    const parts = new Map<string, number>()
    for (const mapping of mappings.removed) {
      const part = plannedPart(mapping)
      parts.set(part, (parts.get(part) ?? 0) + 1)
    }
    for (const mapping of mappings.added) {
      const part = plannedPart(mapping)
      const left = parts.get(part)
      if (!left) return false
      parts.set(part, left - 1)
    }
    const services = changedObjects(settled.services, snapshot.services)
    for (const service of [...services.added, ...services.removed]) if (this.isNamed(at(service.metadata?.namespace, service.metadata?.name))) return false
    // AddressPools change allocations, which the pass's writeback makes.
    const pools = changedObjects(settled.addressPools ?? [], snapshot.addressPools ?? [])
    if (pools.added.length + pools.removed.length > 0) return false
    // So do namespace labels, where a pool selects namespaces.
    const namespaces = changedObjects(settled.namespaces ?? [], snapshot.namespaces ?? [])
    if (namespaces.added.length + namespaces.removed.length > 0) return false
    const slices = changedObjects(settled.endpointSlices, snapshot.endpointSlices)
    for (const slice of [...slices.added, ...slices.removed]) if (this.isNamed(at(slice.metadata?.namespace, slice.metadata?.labels?.[SERVICE_NAME_LABEL]))) return false
    return true
  }

  private isNamed(service: At | undefined): boolean {
    return service !== undefined && (this.named.get(...service) ?? 0) > 0
  }

  private count(service: At | undefined, by: number): void {
    if (service === undefined) return
    const count = (this.named.get(...service) ?? 0) + by
    if (count === 0) this.named.delete(...service)
    else this.named.set(...service, count)
  }
}
