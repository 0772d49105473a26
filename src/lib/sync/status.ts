/**
 * Status writeback: each Mapping is told what planning concluded, through the status subresource with a
 * JSON merge patch, and only when that differs from what the object already says. Several instances share
 * one status: each owns the configuredAddresses keys of the addresses on its own external interfaces,
 * and the keys no live host maintains are left out of Ready and removed by one host (live-hosts.ts).
 */
import {isDeepStrictEqual} from 'node:util'
import type {MappingCondition, MappingResource, MappingStatus} from '../mapping/types.js'
import {compareIpv4, type Ipv4} from '../net/ipv4.js'
import type {HostInfo, MappingVerdict} from '../plan/model.js'
import {crdInstallCommand} from '../source/kube/crd-install.js'
import {httpStatusOf, describeApiError} from '../source/kube/errors.js'
import type {MappingStatusApi, MergePatch} from '../source/kube/writers.js'
import {API_WRITES_IN_FLIGHT, mapBounded} from './bounded.js'
import {isLiveKey, removesStaleKeys, type LiveHosts} from './live-hosts.js'

type ConfiguredAddresses = NonNullable<MappingStatus['configuredAddresses']>

/** A Mapping whose status was written: what it said before and what it says now. */
export interface StatusChange {
  namespace: string
  name: string
  /** The object as stored after the write. */
  mapping: MappingResource
  previous: MappingStatus | undefined
  next: MappingStatus
  /** The configuredAddresses keys this instance owned in this Mapping (see ownedKeys). */
  own: Addresses
}

export interface StatusWriteResult {
  patched: number
  unchanged: number
  /** Still conflicting after one retry with a fresh read, or changed since it was planned (spec or uid); the next sync tries again. */
  conflicts: number
  /** Deleted before their status could be written. */
  gone: number
  failed: number
  changes: StatusChange[]
  errors: Error[]
}

/**
 * Addresses on this host's external interfaces: the configuredAddresses keys this instance owns. A
 * floating address the peer holds now is the peer's to report, so the status says which host serves it.
 */
export function ownAddresses(host: HostInfo): Set<string> {
  const standby = new Set<string>(host.floatingStandby ?? [])
  return new Set(host.interfaces.flatMap((i) => i.addresses.map((a) => a.address as string)).filter((a) => !standby.has(a)))
}

/** Which addresses are in a group: all that the status code asks of one. */
export type Addresses = Pick<ReadonlySet<string>, 'has'>

/**
 * The configuredAddresses keys this instance owns in one Mapping: the addresses on its external
 * interfaces, and the keys it wrote (marked with its host name) for addresses it has since lost,
 * so that a key does not outlive the address leaving the host. Told, not copied: a copy of this
 * host's addresses for every Mapping costs the addresses times the Mappings (at 10,000 Mappings on
 * 1,000 addresses, 56 MB of allocation in a status round).
 */
export function ownedKeys(mapping: MappingResource, own: Addresses, hostName?: string): Addresses {
  if (hostName === undefined) return own
  const written = Object.entries(mapping.status?.configuredAddresses ?? {}).flatMap(([address, entry]) => (entry?.host === hostName && !own.has(address) ? [address] : []))
  return written.length === 0 ? own : eitherOf(own, new Set(written))
}

/** The addresses in `a` or in `b`. */
export function eitherOf(a: Addresses, b: Addresses): Addresses {
  return {has: (address) => a.has(address) || b.has(address)}
}

/**
 * The status a Mapping should have after this instance's write, and the merge patch that gets it there
 * (undefined when it already does). `live`: the hosts whose Lease is current, when known (live-hosts.ts).
 */
export function desiredStatus(
  mapping: MappingResource,
  verdict: MappingVerdict,
  own: Set<string>,
  now: Date,
  hostName?: string,
  live?: LiveHosts,
): {status: MappingStatus; patch: MergePatch | undefined} {
  const current = mapping.status ?? {}
  // The generation the verdict was planned from, which is what it observed, not the one of the object it is written to.
  const generation = verdict.generation
  const owned = ownedKeys(mapping, own, hostName)
  const configured = mergeOwnAddresses(current.configuredAddresses ?? {}, verdict, owned, hostName)
  if (removesStaleKeys(live, hostName)) removeStaleKeys(configured, owned, live)
  // Being deleted: the spec's verdict (invalid, serviceVIP, Valid) stays as it was; only this host's keys go, and Ready says why.
  const deleting = verdict.deleting !== undefined
  const status: MappingStatus = deleting ? {...current} : {...current, invalid: verdict.invalid}
  if (!deleting) {
    if (verdict.serviceVIP !== undefined) status.serviceVIP = verdict.serviceVIP
    else delete status.serviceVIP
  }
  if (Object.keys(configured.merged).length > 0) status.configuredAddresses = configured.merged
  else delete status.configuredAddresses
  const maintained = hostName === undefined ? configured.merged : liveKeys(configured.merged, owned, live)
  const wanted = deleting ? [deletingCondition(verdict)] : [validCondition(verdict), readyCondition(verdict, maintained)]
  status.conditions = mergeConditions(current.conditions ?? [], wanted, generation, now)
  if (generation !== undefined) status.observedGeneration = generation

  const patch: MergePatch = {}
  for (const field of ['invalid', 'serviceVIP', 'conditions', 'observedGeneration'] as const) {
    if (!isDeepStrictEqual(current[field], status[field])) patch[field] = status[field] ?? null
  }
  if (Object.keys(configured.patch).length > 0) patch.configuredAddresses = configured.patch
  return {status, patch: Object.keys(patch).length > 0 ? patch : undefined}
}

/** Writes the status of every Mapping whose desired status differs from its current one; never throws for one Mapping's failure. */
export async function writeStatuses(
  api: MappingStatusApi,
  mappings: MappingResource[],
  verdicts: MappingVerdict[],
  host: HostInfo,
  now: Date,
  hostName?: string,
  inFlight = API_WRITES_IN_FLIGHT,
  live?: LiveHosts,
  settled?: SettledStatuses,
): Promise<StatusWriteResult> {
  const result: StatusWriteResult = {patched: 0, unchanged: 0, conflicts: 0, gone: 0, failed: 0, changes: [], errors: []}
  const own = ownAddresses(host)
  const context = settled ? JSON.stringify([[...own].sort(), hostName ?? null, live ? [...live.hosts].sort() : null]) : ''
  const byName = new Map(verdicts.map((v) => [`${v.namespace}/${v.name}`, v]))
  const writes: {mapping: MappingResource; verdict: MappingVerdict}[] = []
  for (const mapping of mappings) {
    const {namespace, name} = mapping.metadata
    const verdict = byName.get(`${namespace}/${name}`)
    if (!verdict || namespace === undefined || name === undefined) continue
    if (settled?.holds(mapping, verdict, context)) result.unchanged++
    else writes.push({mapping, verdict})
  }
  const outcomes = await mapBounded(writes, inFlight, async ({mapping, verdict}) => {
    try {
      const outcome = await writeOne(api, mapping, verdict, own, now, hostName, live)
      if (outcome === 'unchanged') settled?.note(mapping, verdict, context)
      return outcome
    } catch (error) {
      const {namespace, name} = mapping.metadata
      return new Error(`mapping ${namespace}/${name}: writing status: ${describeApiError(error)}`, {cause: error})
    }
  })
  // Counted in Mapping order, whatever order the writes finished in.
  for (const outcome of outcomes) {
    if (outcome instanceof Error) {
      result.failed++
      result.errors.push(outcome)
    } else if (outcome === 'unchanged' || outcome === 'conflict' || outcome === 'gone') {
      result[outcome === 'conflict' ? 'conflicts' : outcome]++
    } else {
      result.patched++
      result.changes.push(outcome)
    }
  }
  return result
}

/**
 * Mappings whose stored status was found to be what their verdict asks for. A watch pass after one
 * change hands over the very same Mapping and verdict objects for every other Mapping (the planner
 * keeps them), so they are not compared again; the same host, addresses and live hosts are part of
 * what was found.
 */
export class SettledStatuses {
  /**
   * Each Mapping's verdict, found in `context`. One context for all (every write of a pass has the
   * same): an object per Mapping holding both took 0.4 MB at 10,000 Mappings.
   */
  private found = new WeakMap<MappingResource, MappingVerdict>()
  private context: string | undefined

  holds(mapping: MappingResource, verdict: MappingVerdict, context: string): boolean {
    return context === this.context && this.found.get(mapping) === verdict
  }

  /** Notes a Mapping found settled in `context`; in another context than the last, what was noted before no longer holds. */
  note(mapping: MappingResource, verdict: MappingVerdict, context: string): void {
    if (context !== this.context) {
      this.found = new WeakMap()
      this.context = context
    }
    this.found.set(mapping, verdict)
  }
}

async function writeOne(
  api: MappingStatusApi,
  mapping: MappingResource,
  verdict: MappingVerdict,
  own: Set<string>,
  now: Date,
  hostName: string | undefined,
  live: LiveHosts | undefined,
): Promise<StatusChange | 'unchanged' | 'conflict' | 'gone'> {
  const namespace = mapping.metadata.namespace!
  const name = mapping.metadata.name!
  const {generation, uid} = mapping.metadata
  let current = mapping
  // The cache may lag the server: a 409 means someone wrote in between, so read again and recompute once.
  for (let attempt = 0; attempt < 2; attempt++) {
    // A new spec, or a new object of the same name, was not what the verdict was planned from: the next pass plans it and writes.
    if (current.metadata.generation !== generation || current.metadata.uid !== uid) return 'conflict'
    const {status, patch} = desiredStatus(current, verdict, own, now, hostName, live)
    if (!patch) return 'unchanged'
    try {
      // resourceVersion makes the write conditional: conditions are replaced whole, so they must be computed from what is stored.
      const stored = await api.patchStatus(namespace, name, {metadata: {resourceVersion: current.metadata.resourceVersion}, status: patch})
      return {namespace, name, mapping: stored, previous: current.status, next: stored.status ?? status, own: ownedKeys(current, own, hostName)}
    } catch (error) {
      const code = httpStatusOf(error)
      if (code === 404) return await goneOrUnserved(api, namespace, name, error)
      if (code !== 409) throw error
    }
    try {
      current = await api.get(namespace, name)
    } catch (error) {
      if (httpStatusOf(error) === 404) return 'gone'
      throw error
    }
  }
  return 'conflict'
}

/**
 * A 404 on the status subresource means the Mapping was deleted, or that the API serves no status
 * subresource for Mappings at all (the Go controller's CRD): only a read of the object tells them apart.
 */
async function goneOrUnserved(api: MappingStatusApi, namespace: string, name: string, error: unknown): Promise<'gone'> {
  try {
    await api.get(namespace, name)
  } catch (getError) {
    if (httpStatusOf(getError) === 404) return 'gone'
    throw getError
  }
  throw new Error(
    `HTTP 404 on its status subresource, yet the Mapping exists: the installed CRD has no status subresource (the Go controller's CRD?); install smartnat's: ${crdInstallCommand()}`,
    {cause: error},
  )
}

/** Applies this instance's keys to the shared map: its served addresses are set, the others it owns are removed (null in the patch). */
function mergeOwnAddresses(
  current: ConfiguredAddresses,
  verdict: MappingVerdict,
  own: Addresses,
  hostName: string | undefined,
): {merged: ConfiguredAddresses; patch: Record<string, EntryPatch | null>} {
  const merged: ConfiguredAddresses = {}
  const patch: Record<string, EntryPatch | null> = {}
  for (const [address, entry] of Object.entries(current)) if (!own.has(address)) merged[address] = entry
  const faults = verdict.faults ?? {}
  // An address this host cannot serve gets a key too, with the reason: every instance reads Ready off these keys.
  for (const address of new Set([...Object.keys(verdict.configuredAddresses), ...Object.keys(faults)])) {
    if (!own.has(address)) continue
    const fault = faults[address]
    merged[address] = {
      podIPs: [...(verdict.configuredAddresses[address]?.podIPs ?? [])],
      ...(hostName === undefined ? {} : {host: hostName}),
      ...(fault === undefined ? {} : {fault}),
    }
    if (!isDeepStrictEqual(current[address], merged[address])) patch[address] = entryPatch(current[address], merged[address])
  }
  for (const address of Object.keys(current)) {
    if (own.has(address) && !(address in merged)) patch[address] = null
  }
  return {merged: sortedByAddress(merged), patch}
}

type EntryPatch = Record<string, unknown>

/** Drops the keys no live host maintains (the lowest-named live host does this); null in the patch removes them. */
function removeStaleKeys(configured: {merged: ConfiguredAddresses; patch: Record<string, EntryPatch | null>}, owned: Addresses, live: LiveHosts | undefined): void {
  for (const [address, entry] of Object.entries(configured.merged)) {
    if (owned.has(address) || isLiveKey(entry, live)) continue
    delete configured.merged[address]
    configured.patch[address] = null
  }
}

/** The keys Ready is read off: this instance's own, and those another live host maintains (an instance without a host name marks no key, and counts them all). */
function liveKeys(configured: ConfiguredAddresses, owned: Addresses, live: LiveHosts | undefined): ConfiguredAddresses {
  return Object.fromEntries(Object.entries(configured).filter(([address, entry]) => owned.has(address) || isLiveKey(entry, live)))
}

function deletingCondition(verdict: MappingVerdict): MappingCondition {
  return {type: 'Ready', status: 'False', reason: 'Deleting', message: verdict.invalid}
}

// A merge patch merges into the stored entry: a field the entry no longer has (a cleared fault) must be sent as null.
function entryPatch(stored: ConfiguredAddresses[string] | undefined, next: ConfiguredAddresses[string]): EntryPatch {
  const patch: EntryPatch = {...next}
  for (const field of Object.keys(stored ?? {})) if (!(field in next)) patch[field] = null
  return patch
}

function validCondition(verdict: MappingVerdict): MappingCondition {
  return verdict.valid
    ? {type: 'Valid', status: 'True', reason: 'Valid', message: 'spec is valid and its Service resolves'}
    : {type: 'Valid', status: 'False', reason: 'Invalid', message: verdict.invalid}
}

/**
 * Ready is read off the shared configuredAddresses (this instance's keys as just computed, the other
 * instances' as stored), so instances that serve different addresses agree on it instead of overwriting each other.
 */
function readyCondition(verdict: MappingVerdict, configured: ConfiguredAddresses): MappingCondition {
  if (!verdict.valid) return {type: 'Ready', status: 'False', reason: 'Invalid', message: verdict.invalid}
  const faulted = Object.entries(configured).filter(([, entry]) => entry?.fault !== undefined)
  if (faulted.length > 0) {
    const where = (entry: ConfiguredAddresses[string]) => (entry?.host === undefined ? '' : ` on ${entry.host}`)
    return {type: 'Ready', status: 'False', reason: 'HostFault', message: faulted.map(([a, entry]) => `${a} not served${where(entry)}: ${entry!.fault}`).join('; ')}
  }
  const addresses = Object.keys(configured)
  if (addresses.length === 0) {
    return {type: 'Ready', status: 'False', reason: 'NoLocalAddress', message: 'none of its addresses is on the external interfaces of a smartnat host'}
  }
  const unserved = verdict.unservedPorts ?? []
  if (unserved.length > 0) return {type: 'Ready', status: 'False', reason: 'NoReadyEndpoints', message: unservedMessage(unserved)}
  const serving = addresses.filter((a) => (configured[a]?.podIPs.length ?? 0) > 0)
  if (serving.length === 0) {
    return {type: 'Ready', status: 'False', reason: 'NoReadyEndpoints', message: `configured on ${addresses.join(', ')}, but the Service has no ready endpoints`}
  }
  return {type: 'Ready', status: 'True', reason: 'Configured', message: `serving on ${serving.join(', ')}`}
}

/**
 * `no ready endpoints for port 80, port 53/udp; new connections are refused`: a bare port is tcp,
 * the protocol a Mapping's port has unless it says otherwise, so tcp/53 and udp/53 read apart.
 */
export function unservedMessage(ports: NonNullable<MappingVerdict['unservedPorts']>): string {
  const names = ports.map((p) => `port ${p.port}${p.protocol === 'tcp' ? '' : `/${p.protocol}`}`)
  return `no ready endpoints for ${names.join(', ')}; new connections are refused`
}

/** Keeps lastTransitionTime when a condition's status did not change, and any condition types smartnat does not own. */
function mergeConditions(current: MappingCondition[], wanted: MappingCondition[], generation: number | undefined, now: Date): MappingCondition[] {
  const stamp = now.toISOString().replace(/\.\d{3}Z$/, 'Z')
  const types = new Set(wanted.map((c) => c.type))
  const kept = current.filter((c) => !types.has(c.type))
  return [...wanted.map((condition) => {
    const before = current.find((c) => c.type === condition.type)
    const lastTransitionTime = before && before.status === condition.status && before.lastTransitionTime ? before.lastTransitionTime : stamp
    return {...condition, lastTransitionTime, ...(generation !== undefined ? {observedGeneration: generation} : {})}
  }), ...kept]
}

function sortedByAddress<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => compareIpv4(a as Ipv4, b as Ipv4)))
}
