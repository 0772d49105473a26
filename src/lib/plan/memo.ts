/**
 * A plan kept from one pass to the next and brought up to date with what changed in between, for a
 * caller that plans again and again (the watch loop). A pass after one change re-plans the Mappings
 * that change can affect: the changed Mappings, those naming a changed Service or EndpointSlice, and
 * those whose standing in a conflict it moves. Everything else, down to the very NatMapping and
 * verdict objects, is the last pass's. The result is the plan a whole re-plan would make; whenever
 * the kept plan cannot be brought up to date exactly (other options or host, duplicate names), the
 * whole snapshot is planned again.
 *
 * Objects are taken as immutable, as every source treats them: a changed object is replaced by a new
 * one, never edited.
 */
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../mapping/types.js'
import {SERVICE_NAME_LABEL} from '../mapping/types.js'
import {flat} from '../net/fitted.js'
import {compareIpv4, sortByIpv4, type Ipv4} from '../net/ipv4.js'
import {ResolutionMemo, type Candidate, type ServiceIndex} from './candidates.js'
import {indexEndpoints} from './endpoints.js'
import type {HostInfo, MappingVerdict, NatEgress, NatMapping, Plan, PlanOptions, Snapshot} from './model.js'
import {changedObjects} from './changed.js'
import {NameMap} from '../net/name-map.js'
import {firstItem, itemsOf, withItem, withoutItem, type OneOrMore} from '../net/one-or-more.js'
import {compareNames, createdAt, namesOf} from './order.js'
import {conflictOf, planAll, portKey, type FullPlan, type PlannedMapping} from './plan.js'
import {indexPodIPs} from './pods.js'
import {invalidVerdict, programCandidate, resolveMapping, unprogrammedVerdict, type HostPlan, type PodLookups} from './program.js'

/**
 * The part of a Mapping a pass reads: its spec, names, age, generation (verdicts carry it), deletion
 * and finalizers (the Go controller's is removed after a pass), and what allocation gave it or why it
 * waits (status.allocated, pending); not the rest of its status, labels, annotations or resourceVersion.
 * Made anew on each call, never kept: only changed Mappings are compared, and kept for every Mapping
 * the texts would cost 5 MB at 10,000.
 */
export function plannedPart(mapping: MappingResource): string {
  const {namespace, name, creationTimestamp, generation, deletionTimestamp, finalizers} = mapping.metadata ?? {}
  return JSON.stringify([namespace, name, creationTimestamp, generation, deletionTimestamp, finalizers, mapping.spec, mapping.status?.allocated, mapping.pending])
}

/** Plans kept across passes; give the same memo to every plan() of one caller. */
export class PlanMemo {
  readonly resolutions = new ResolutionMemo()
  private kept: Kept | undefined
  /** How many Mappings the last plan() programmed afresh, whole re-plan or not: what a pass cost. */
  replanned = 0

  /** The plan of `snapshot`, from the kept one where it can be. */
  plan(snapshot: Snapshot, host: HostInfo, options: PlanOptions): Plan {
    const hostKey = JSON.stringify(host)
    const optionsKey = JSON.stringify(options)
    const kept = this.kept
    if (kept !== undefined && kept.hostKey === hostKey && kept.optionsKey === optionsKey) {
      const updated = update(kept, snapshot, this.resolutions)
      if (updated !== undefined) {
        this.replanned = updated
        return kept.plan
      }
    }
    const full = planAll(snapshot, host, options, this.resolutions)
    this.kept = keep(full, snapshot, options, hostKey, optionsKey)
    this.replanned = full.byName.length
    return full.plan
  }
}

/** A Mapping of the kept plan; the same object from pass to pass while its name stays. */
interface Entry extends PlannedMapping {
  namespace: string
  name: string
  /** creationTimestamp as createdAt reads it. */
  at: number
  /**
   * Whether its endpoints are among the kept claims: those of its resolution, a candidate's addresses
   * times its ports, read from the resolution rather than kept in a list of their own per Mapping.
   */
  claiming: boolean
  /** The Service it names in its namespace, as written (validated or not): its changes and its EndpointSlices' are this Mapping's. */
  serviceName: string | undefined
}

interface Kept {
  snapshot: Snapshot
  hostKey: string
  optionsKey: string
  options: PlanOptions
  host: HostPlan
  services: ServiceIndex
  entries: NameMap<Entry>
  byName: Entry[]
  byAge: Entry[]
  /** The candidates claiming each endpoint, whatever conflict they lost, in the order they came (most endpoints have one). */
  claims: Map<Ipv4, Map<number, OneOrMore<Entry>>>
  /** The Mappings naming each Service, in the order they came (most Services have one). */
  dependents: NameMap<OneOrMore<Entry>>
  /** The EndpointSlices of each Service, in the order they came: a Mapping programmed again reads its Service's alone. */
  slices: NameMap<OneOrMore<EndpointSliceResource>>
  egress: EgressKept | undefined
  plan: Plan
}

function keep(full: FullPlan, snapshot: Snapshot, options: PlanOptions, hostKey: string, optionsKey: string): Kept | undefined {
  // Duplicate names collapse by rules (see dedupeByName) that a change of one object cannot follow: such a snapshot is planned whole every time.
  if (full.byName.length !== snapshot.mappings.length) return undefined
  const services = new Map<string, Map<string, ServiceResource>>()
  for (const service of snapshot.services) {
    const {namespace, name} = namesOf(service)
    if (services.get(namespace)?.has(name)) return undefined
    services.set(namespace, (services.get(namespace) ?? new Map<string, ServiceResource>()).set(name, service))
  }
  const entries = new NameMap<Entry>()
  const toEntry = new Map<PlannedMapping, Entry>()
  const byName = full.byName.map((planned) => {
    const entry = newEntry(planned.resource)
    Object.assign(entry, planned)
    entries.set(entry.namespace, entry.name, entry)
    toEntry.set(planned, entry)
    return entry
  })
  const kept: Kept = {
    snapshot,
    hostKey,
    optionsKey,
    options,
    host: full.host,
    services,
    entries,
    byName,
    byAge: full.byAge.map((planned) => toEntry.get(planned)!),
    claims: new Map(),
    dependents: new NameMap(),
    slices: new NameMap(),
    egress: undefined,
    plan: full.plan,
  }
  for (const entry of kept.byAge) {
    addDependent(kept, entry)
    addClaims(kept, entry)
  }
  for (const slice of snapshot.endpointSlices) addSlice(kept.slices, slice)
  if (options.snat) kept.egress = keepEgress(kept.byAge, full.plan.model.egress)
  return kept
}

function newEntry(resource: MappingResource): Entry {
  const {namespace, name} = namesOf(resource)
  // Every field an entry ever has, each set (undefined or not) rather than added or deleted: an
  // object made with all of them holds them in itself, without a second store for those added later.
  return {resource, resolution: {reason: ''}, conflict: undefined, verdict: undefined!, mapping: undefined, namespace, name, at: createdAt(resource), claiming: false, serviceName: undefined}
}

/**
 * Brings `kept` up to date with `snapshot`; returns how many Mappings were programmed afresh, or
 * undefined when only a whole re-plan gives the exact plan (then `kept` is left inconsistent: the caller replaces it).
 */
function update(kept: Kept, snapshot: Snapshot, resolutions: ResolutionMemo): number | undefined {
  const mappings = changedObjects(kept.snapshot.mappings, snapshot.mappings)
  const services = changedObjects(kept.snapshot.services, snapshot.services)
  const slices = changedObjects(kept.snapshot.endpointSlices, snapshot.endpointSlices)
  kept.snapshot = snapshot

  // Services and EndpointSlices: which Services' Mappings must be looked at again.
  const changedServices = new NameMap<true>()
  for (const service of services.removed) {
    const {namespace, name} = namesOf(service)
    if (kept.services.get(namespace)?.get(name) !== service) return undefined
    kept.services.get(namespace)!.delete(name)
    changedServices.set(namespace, name, true)
  }
  for (const service of services.added) {
    const {namespace, name} = namesOf(service)
    if (kept.services.get(namespace)?.has(name)) return undefined
    kept.services.set(namespace, (kept.services.get(namespace) ?? new Map<string, ServiceResource>()).set(name, service))
    changedServices.set(namespace, name, true)
  }
  for (const slice of slices.removed) {
    const service = serviceOf(slice)
    if (service !== undefined) changedServices.set(service.namespace, service.name, true)
    if (!removeSlice(kept.slices, slice)) return undefined
  }
  for (const slice of slices.added) {
    const service = serviceOf(slice)
    if (service !== undefined) changedServices.set(service.namespace, service.name, true)
    addSlice(kept.slices, slice)
  }

  // Mappings: gone, new or changed ones.
  const touched = new Set<Entry>()
  const gone = new Set<Entry>()
  for (const resource of mappings.removed) {
    const {namespace, name} = namesOf(resource)
    const entry = kept.entries.get(namespace, name)
    if (entry === undefined || entry.resource !== resource) return undefined
    gone.add(entry)
  }
  for (const resource of mappings.added) {
    const {namespace, name} = namesOf(resource)
    const entry = kept.entries.get(namespace, name)
    if (entry === undefined) {
      const added = newEntry(resource)
      kept.entries.set(namespace, name, added)
      insertSorted(kept.byName, added, compareNames)
      touched.add(added)
      continue
    }
    // Two objects of one name in this snapshot.
    if (!gone.delete(entry)) return undefined
    const changed = plannedPart(resource) !== plannedPart(entry.resource)
    entry.resource = resource
    if (changed) touched.add(entry)
  }
  // A Mapping gone in this pass is not resolved again, even when its Service changed too (one
  // `kubectl delete -f` removes both): resolving it would put it back among the claims and dependents.
  for (const [namespace, name] of changedServices.keys()) {
    for (const entry of itemsOf(kept.dependents.get(namespace, name))) if (!gone.has(entry)) touched.add(entry)
  }

  // Their endpoints leave the claims, and come back with what each resolves to now.
  const contested: Entry[] = []
  const reprogram = new Set<Entry>()
  const before = new Map<Entry, NatMapping | undefined>()
  for (const entry of gone) {
    contested.push(...claimantsOf(kept, entry))
    removeClaims(kept, entry)
    removeDependent(kept, entry)
    removeSorted(kept.byName, entry, compareNames)
    removeSorted(kept.byAge, entry, compareAge)
    kept.entries.delete(entry.namespace, entry.name)
    before.set(entry, entry.mapping)
  }
  for (const entry of touched) {
    contested.push(...claimantsOf(kept, entry))
    removeClaims(kept, entry)
    removeDependent(kept, entry)
    // A new entry is in no list yet; an existing one is where its age, not changed yet, puts it.
    removeSorted(kept.byAge, entry, compareAge)
    entry.at = createdAt(entry.resource)
    insertSorted(kept.byAge, entry, compareAge)
    entry.resolution = resolveMapping(entry.resource, kept.options, kept.services, resolutions)
    addDependent(kept, entry)
    addClaims(kept, entry)
    contested.push(...claimantsOf(kept, entry))
    reprogram.add(entry)
  }

  // Conflicts, oldest first: a Mapping that wins or loses an endpoint may change who owns the
  // endpoints of every younger Mapping claiming one of its own.
  const queue = new Set<Entry>([...touched, ...contested].filter((entry) => !gone.has(entry)))
  const waiting = [...queue].sort(compareAge)
  while (waiting.length > 0) {
    const entry = waiting.shift()!
    queue.delete(entry)
    const previous = entry.conflict
    const conflict = 'reason' in entry.resolution ? undefined : conflictOf(entry.resolution, (address, key) => ownerOlderThan(kept, entry, address, key))
    entry.conflict = conflict
    if (conflict !== previous) reprogram.add(entry)
    if ((conflict === undefined) === (previous === undefined)) continue
    for (const younger of claimantsOf(kept, entry)) {
      if (compareAge(entry, younger) < 0 && !queue.has(younger)) {
        queue.add(younger)
        insertSorted(waiting, younger, compareAge)
      }
    }
  }

  // Program them again, their pods looked up in the slices of their Services only.
  const pods = podLookups(kept.slices, [...reprogram].filter((entry) => !('reason' in entry.resolution) && entry.conflict === undefined))
  for (const entry of reprogram) {
    if (!before.has(entry)) before.set(entry, entry.mapping)
    const programmed =
      'reason' in entry.resolution
        ? {verdict: unprogrammedVerdict(entry.resource, entry.resolution)}
        : entry.conflict !== undefined
          ? {verdict: invalidVerdict(entry.resource, entry.conflict)}
          : programCandidate(entry.resolution, kept.host, pods)
    entry.verdict = sameValue(entry.verdict, programmed.verdict) ? entry.verdict : programmed.verdict
    const mapping = programmed.mapping !== undefined && sameValue(entry.mapping, programmed.mapping) ? entry.mapping : programmed.mapping
    entry.mapping = mapping
  }

  const changedMappings = [...before].filter(([entry, mapping]) => gone.has(entry) || entry.mapping !== mapping || touched.has(entry))
  if (kept.egress !== undefined && changedMappings.length > 0) updateEgress(kept.egress, changedMappings, gone)
  const {model} = kept.plan
  // Plain loops: at 10,000 Mappings a flatMap's array per entry costs more than the rest of the pass.
  // Pushed rather than written into `new Array(n)`: an array made with holes stays one, and every
  // later walk of the verdicts (each pass compares them with the last ones) checks each element for a hole.
  const programmed: NatMapping[] = []
  const verdicts: MappingVerdict[] = []
  for (let i = 0; i < kept.byName.length; i++) {
    const entry = kept.byName[i]!
    verdicts.push(entry.verdict)
    if (entry.mapping) programmed.push(entry.mapping)
  }
  kept.plan = {
    model: {
      mappings: programmed,
      interfaces: model.interfaces,
      egress: kept.egress?.list ?? [],
      masquerade: model.masquerade,
      ...(model.masqueradeTo === undefined ? {} : {masqueradeTo: model.masqueradeTo}),
    },
    verdicts,
    interfaceFaults: kept.plan.interfaceFaults,
  }
  return reprogram.size
}

/** Oldest first, then namespace/name: the order conflicts and egress are decided in. */
function compareAge(a: Entry, b: Entry): number {
  if (a.at !== b.at) return a.at < b.at ? -1 : 1
  return compareNames(a, b)
}

/** Where `item` goes in `list`, sorted by `compare`: before the first element not ordered before it. */
function sortedIndex<T>(list: readonly T[], item: T, compare: (a: T, b: T) => number): number {
  let low = 0
  let high = list.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (compare(list[middle]!, item) < 0) low = middle + 1
    else high = middle
  }
  return low
}

function insertSorted<T>(list: T[], item: T, compare: (a: T, b: T) => number): void {
  list.splice(sortedIndex(list, item, compare), 0, item)
}

/** Removes `item` found by `compare` (which must order it as when it was inserted); false when it is not there. */
function removeSorted<T>(list: T[], item: T, compare: (a: T, b: T) => number): boolean {
  const at = sortedIndex(list, item, compare)
  if (list[at] !== item) return false
  list.splice(at, 1)
  return true
}

function addDependent(kept: Kept, entry: Entry): void {
  const serviceName = entry.resource.spec?.serviceName
  entry.serviceName = typeof serviceName === 'string' ? serviceName : undefined
  if (entry.serviceName === undefined) return
  kept.dependents.set(entry.namespace, entry.serviceName, withItem(kept.dependents.get(entry.namespace, entry.serviceName), entry))
}

function removeDependent(kept: Kept, entry: Entry): void {
  if (entry.serviceName === undefined) return
  const dependents = withoutItem(kept.dependents.get(entry.namespace, entry.serviceName), entry)
  if (dependents === undefined) kept.dependents.delete(entry.namespace, entry.serviceName)
  else kept.dependents.set(entry.namespace, entry.serviceName, dependents)
  entry.serviceName = undefined
}

/** The endpoints `entry` claims while `claiming`: address, then port key. */
function* claimedBy(entry: Entry): Iterable<[Ipv4, number]> {
  if (!entry.claiming || 'reason' in entry.resolution) return
  const {addresses, ports} = entry.resolution
  for (const address of addresses) for (const port of ports) yield [address, portKey(port)]
}

function addClaims(kept: Kept, entry: Entry): void {
  if ('reason' in entry.resolution) return
  entry.claiming = true
  for (const [address, key] of claimedBy(entry)) {
    const byPort = kept.claims.get(address) ?? new Map<number, OneOrMore<Entry>>()
    kept.claims.set(address, byPort)
    byPort.set(key, withItem(byPort.get(key), entry))
  }
}

// Called before the entry's resolution changes, so that it removes the endpoints addClaims added.
function removeClaims(kept: Kept, entry: Entry): void {
  for (const [address, key] of claimedBy(entry)) {
    const byPort = kept.claims.get(address)!
    const claimants = withoutItem(byPort.get(key), entry)
    if (claimants === undefined) byPort.delete(key)
    else byPort.set(key, claimants)
    if (byPort.size === 0) kept.claims.delete(address)
  }
  entry.claiming = false
}

/** The other Mappings claiming an endpoint `entry` claims. */
function claimantsOf(kept: Kept, entry: Entry): Entry[] {
  const found: Entry[] = []
  for (const [address, key] of claimedBy(entry)) for (const other of itemsOf(kept.claims.get(address)!.get(key))) if (other !== entry) found.push(other)
  return found
}

/** The Mapping older than `entry` that owns an endpoint: the one claimant that lost no conflict. */
function ownerOlderThan(kept: Kept, entry: Entry, address: Ipv4, key: number): Candidate | undefined {
  for (const other of itemsOf(kept.claims.get(address)?.get(key))) {
    if (other !== entry && other.conflict === undefined && compareAge(other, entry) < 0) return other.resolution as Candidate
  }
  return undefined
}

/** Pod lookups that answer for the Services of `entries`, built from those Services' EndpointSlices alone. */
function podLookups(slices: NameMap<OneOrMore<EndpointSliceResource>>, entries: readonly Entry[]): PodLookups {
  const wanted = new NameMap<true>()
  const found: EndpointSliceResource[] = []
  for (const entry of entries) {
    const {namespace, serviceName} = entry.resolution as Candidate
    if (wanted.get(namespace, serviceName)) continue
    wanted.set(namespace, serviceName, true)
    found.push(...itemsOf(slices.get(namespace, serviceName)))
  }
  return {podIPsOf: indexPodIPs(found), endpointsOf: indexEndpoints(found).endpointsOf}
}

/** The Service an EndpointSlice belongs to, by its label; undefined for one that names none. */
function serviceOf(slice: EndpointSliceResource): {namespace: string; name: string} | undefined {
  const namespace = slice?.metadata?.namespace
  const name = slice?.metadata?.labels?.[SERVICE_NAME_LABEL]
  return typeof namespace === 'string' && typeof name === 'string' ? {namespace, name} : undefined
}

function addSlice(slices: NameMap<OneOrMore<EndpointSliceResource>>, slice: EndpointSliceResource): void {
  const service = serviceOf(slice)
  if (service === undefined) return
  slices.set(service.namespace, service.name, withItem(slices.get(service.namespace, service.name), slice))
}

/** Removes a slice addSlice added; false when it is not there (the kept plan no longer matches its snapshot). */
function removeSlice(slices: NameMap<OneOrMore<EndpointSliceResource>>, slice: EndpointSliceResource): boolean {
  const service = serviceOf(slice)
  if (service === undefined) return true
  const list = slices.get(service.namespace, service.name)
  if (!itemsOf(list).includes(slice)) return false
  const left = withoutItem(list, slice)
  if (left === undefined) slices.delete(service.namespace, service.name)
  else slices.set(service.namespace, service.name, left)
  return true
}

/** Whether two plan values are the same, compared as JSON (key order included, which the planner fixes). */
function sameValue(a: MappingVerdict | NatMapping | NatEgress | undefined, b: MappingVerdict | NatMapping | NatEgress | undefined): boolean {
  return a !== undefined && b !== undefined && JSON.stringify(a) === JSON.stringify(b)
}

/** Egress as planEgress decides it, kept: each pod IP leaves with the first local address of the oldest programmed Mapping listing it. */
interface EgressKept {
  /** The programmed Mappings listing each pod IP, oldest first (most pod IPs are listed by one). */
  listing: Map<Ipv4, OneOrMore<Entry>>
  /** The programmed Mappings by their first local address. */
  atAddress: Map<Ipv4, Set<Entry>>
  byAddress: Map<Ipv4, NatEgress>
  list: NatEgress[]
}

function keepEgress(byAge: readonly Entry[], list: NatEgress[]): EgressKept {
  const egress: EgressKept = {listing: new Map(), atAddress: new Map(), byAddress: new Map(list.map((group) => [group.address, group])), list}
  for (const entry of byAge) if (entry.mapping) addEgress(egress, entry, entry.mapping, compareAge)
  return egress
}

function addEgress(egress: EgressKept, entry: Entry, mapping: NatMapping, compare: (a: Entry, b: Entry) => number): void {
  const first = mapping.addresses[0]!.address
  egress.atAddress.set(first, (egress.atAddress.get(first) ?? new Set<Entry>()).add(entry))
  for (const ip of mapping.podIPs) {
    const listing = egress.listing.get(ip)
    if (listing === undefined) egress.listing.set(ip, entry)
    else {
      const entries = Array.isArray(listing) ? listing : [listing]
      insertSorted(entries, entry, compare)
      egress.listing.set(ip, entries)
    }
  }
}

function updateEgress(egress: EgressKept, changed: readonly [Entry, NatMapping | undefined][], gone: ReadonlySet<Entry>): void {
  const affected = new Set<Ipv4>()
  const firstOf = (entry: Entry | undefined) => entry?.mapping?.addresses[0]?.address
  for (const [entry, mapping] of changed) {
    if (mapping === undefined) continue
    const first = mapping.addresses[0]!.address
    affected.add(first)
    const atFirst = egress.atAddress.get(first)!
    atFirst.delete(entry)
    if (atFirst.size === 0) egress.atAddress.delete(first)
    for (const ip of mapping.podIPs) {
      const listing = egress.listing.get(ip)
      const first = firstItem(listing) === entry
      const left = withoutItem(listing, entry)
      if (left === undefined) egress.listing.delete(ip)
      else {
        egress.listing.set(ip, left)
        if (first) addIfAny(affected, firstOf(firstItem(left)))
      }
    }
  }
  for (const [entry] of changed) {
    if (gone.has(entry) || !entry.mapping) continue
    addEgress(egress, entry, entry.mapping, compareAge)
    affected.add(entry.mapping.addresses[0]!.address)
    for (const ip of entry.mapping.podIPs) {
      const listing = egress.listing.get(ip)
      if (Array.isArray(listing) && listing[0] === entry) addIfAny(affected, firstOf(listing[1]))
    }
  }
  for (const address of affected) {
    const group = egressAt(egress, address)
    const old = egress.byAddress.get(address)
    if (group === undefined) egress.byAddress.delete(address)
    else if (!sameValue(old, group)) egress.byAddress.set(address, group)
  }
  egress.list = [...egress.byAddress.values()].sort((a, b) => compareIpv4(a.address, b.address))
}

function addIfAny<T>(set: Set<T>, item: T | undefined): void {
  if (item !== undefined) set.add(item)
}

/** The egress of one address: the pod IPs its Mappings own, as planEgress would group them. */
function egressAt(egress: EgressKept, address: Ipv4): NatEgress | undefined {
  const podIPs: Ipv4[] = []
  const owners: Entry[] = []
  let iface = ''
  for (const entry of egress.atAddress.get(address) ?? []) {
    const owned = entry.mapping!.podIPs.filter((ip) => firstItem(egress.listing.get(ip)) === entry)
    if (owned.length === 0) continue
    podIPs.push(...owned)
    owners.push(entry)
    iface = entry.mapping!.addresses[0]!.interface
  }
  if (owners.length === 0) return undefined
  return {address, interface: iface, podIPs: sortByIpv4(podIPs, (ip) => ip), mappings: owners.sort(compareNames).map((entry) => flat(`${entry.namespace}/${entry.name}`))}
}
