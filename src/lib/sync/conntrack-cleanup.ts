/**
 * The last step of a pass: dropping smartnat's conntrack entries to targets that are gone.
 *
 * Best effort: the rules are already applied when it runs, so its failure does not fail the pass.
 * It is reported (SyncReport.conntrackError), and what it could not do is handed back as a
 * PendingCleanup, which a daemon gives its next pass: by then the endpoint's rule no longer differs
 * and the status no longer lists the pod, so nothing else would remember them.
 */
import {ADMITTED_CONNECTION_MARK, type ApplyResult, type ChangedEndpoint} from '../backend/backend.js'
import {deleteFlowsFromEndpoints, deleteFlowsFromUnlisted, deleteStaleNatFlows, type NatFlowEndpoint, type NatFlowTarget, type NatTarget} from '../host/conntrack.js'
import type {Runner} from '../host/runner.js'
import type {Protocol} from '../mapping/types.js'
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import {errorText} from '../observe/log.js'
import type {HostInfo, NatMapping, NatModel, Plan, Snapshot} from '../plan/model.js'
import {directFlowEndpoints, directListing, interfaceMarks, type DirectListing} from './direct-flows.js'
import type {CleanupMemo} from './cleanup-memo.js'
import {vanishedPods} from './vanished-pods.js'

/** Conntrack cleanup a pass could not do; the next pass retries it. */
export interface PendingCleanup {
  /** Endpoints whose rule changed: smartnat's entries to anything but the current target go. */
  changedEndpoints: ChangedEndpoint[]
  /** Pods that left: smartnat's entries they answer go. */
  vanishedPods: Ipv4[]
}

export interface CleanupOutcome {
  deleted: number
  /** Why some of it failed; `pending` is then what to retry. */
  error?: string
  pending?: PendingCleanup
  /**
   * Every pod the Services of mode-direct Mappings list now, for the next pass of a daemon (`listedBefore`);
   * absent when this pass could not look through the kernel's connections for it to start from.
   */
  listed?: Ipv4[]
}

/**
 * Drops smartnat's entries to the targets an apply changed and to the pods that left, plus what `retry`
 * carries over. A mode-direct pod has left when no EndpointSlice of its Service lists it any more:
 * against `listedBefore` (what the daemon's previous pass listed) when given, else by looking through
 * the connections smartnat admitted, as a `sync` from cron must, which remembers nothing.
 */
export async function dropVanishedFlows(
  runner: Runner,
  applied: ApplyResult,
  snapshot: Snapshot,
  planned: Plan,
  host: HostInfo,
  retry?: PendingCleanup,
  listedBefore?: readonly Ipv4[],
  memo?: CleanupMemo,
): Promise<CleanupOutcome> {
  const changed = uniqueEndpoints([...applied.changedEndpoints, ...(retry?.changedEndpoints ?? [])])
  memo?.follow(planned.model)
  const listing = memo?.hasDirect() === false ? {byMapping: new Map<string, Ipv4[]>(), all: []} : directListing(snapshot, planned.model)
  const pods = memo
    ? memo.vanishedPods.vanished(snapshot, planned, host, retry?.vanishedPods, listing, listedBefore)
    : vanishedPods(snapshot, planned, host, retry?.vanishedPods, listing, listedBefore)
  let deleted = 0
  let scanned = listedBefore !== undefined || listing.byMapping.size === 0
  const errors: string[] = []
  const pending: PendingCleanup = {changedEndpoints: [], vanishedPods: []}
  // Each half runs even when the other failed: one broken filter must not keep the rest.
  if (changed.length > 0) {
    try {
      const candidates = memo ? memo.mappingsOn(new Set(changed.map((e) => e.address))) : planned.model.mappings
      deleted += await deleteStaleNatFlows(runner, flowTargets(changed, candidates, listing), ADMITTED_CONNECTION_MARK)
    } catch (error) {
      errors.push(errorText(error))
      pending.changedEndpoints = changed
    }
  }
  if (pods.length > 0) {
    try {
      deleted += await deleteFlowsFromEndpoints(runner, pods, () => modelEndpoints(planned.model))
    } catch (error) {
      errors.push(errorText(error))
      pending.vanishedPods = pods
    }
  }
  if (!scanned) {
    try {
      deleted += await deleteFlowsFromUnlisted(runner, directFlowEndpoints(planned.model, listing), interfaceMarks(planned.model, listing))
      scanned = true
    } catch (error) {
      errors.push(errorText(error))
    }
  }
  const listed = scanned ? {listed: listing.all} : {}
  return errors.length === 0 ? {deleted, ...listed} : {deleted, error: errors.join('; '), pending, ...listed}
}

/** A one-line account of what a failed cleanup left, for logs and warnings. */
export function describePending(pending: PendingCleanup): string {
  const parts: string[] = []
  if (pending.changedEndpoints.length > 0) {
    const endpoints = [...new Set(pending.changedEndpoints.map((e) => `${e.address} ${e.protocol}/${e.port}`))]
    parts.push(`connections to ${endpoints.join(', ')} translated to their former targets`)
  }
  if (pending.vanishedPods.length > 0) parts.push(`connections answered by the pods that left (${pending.vanishedPods.join(', ')})`)
  return parts.join('; ')
}

/**
 * Each endpoint whose rule changed, once, with the target its connections may keep (none when it is
 * gone) and every target smartnat's rule had for it before; `mappings` are the model's, or those of
 * them on the changed endpoints' addresses.
 */
function flowTargets(changed: ChangedEndpoint[], mappings: readonly NatMapping[], listing: DirectListing): NatFlowTarget[] {
  // Only the changed endpoints are looked up: a key is made only for an endpoint on a changed address.
  const addresses = new Set<string>(changed.map((e) => e.address))
  const wanted = new Set(changed.map(key))
  const current = new Map<string, {target: NatTarget} | {directKeeps: Set<Ipv4>}>()
  for (const m of mappings) {
    let keeps: Set<Ipv4> | undefined
    for (const e of m.endpoints) {
      if (!addresses.has(e.address) || !wanted.has(key(e))) continue
      // Mode direct: the ClusterIP and every pod the Service still lists keep their connections.
      keeps ??= new Set(m.groups ? [...(listing.byMapping.get(`${m.namespace}/${m.name}`) ?? []), ...(m.serviceVIP ? [m.serviceVIP] : [])] : [])
      current.set(key(e), e.group === undefined ? {target: {ip: e.targetIP, port: e.targetPort}} : {directKeeps: keeps})
    }
  }
  const targets = new Map<string, NatFlowTarget>()
  for (const e of changed) {
    const k = key(e)
    const entry = targets.get(k) ?? {address: e.address as Ipv4, protocol: e.protocol as Protocol, port: e.port, formerTargets: []}
    const now = current.get(k)
    if (now && 'target' in now) entry.target = now.target
    const former = parseTarget(e.oldTarget)
    // Now in mode direct: connections made in mode service still reach the pods through the same
    // Service's ClusterIP (kube-proxy or the route to a node), and those to a pod still listed go
    // on as well, so they stay until they end.
    if (now && 'directKeeps' in now) {
      entry.formerOnly = true
      if (former && !now.directKeeps.has(former.ip)) entry.formerTargets.push(former)
    } else if (former) entry.formerTargets.push(former)
    targets.set(k, entry)
  }
  // A direct endpoint with no former target left to cut has nothing to look for.
  return [...targets.values()].filter((t) => !t.formerOnly || t.formerTargets.length > 0)
}

function modelEndpoints(model: NatModel): NatFlowEndpoint[] {
  return model.mappings.flatMap((m) => m.endpoints.map(({address, protocol, port}) => ({address, protocol, port})))
}

function key(e: Pick<ChangedEndpoint, 'address' | 'protocol' | 'port'>): string {
  return `${e.address} ${e.protocol} ${e.port}`
}

/** Each (endpoint, former target) once: a cleanup that keeps failing must not grow what it retries. */
function uniqueEndpoints(endpoints: ChangedEndpoint[]): ChangedEndpoint[] {
  const unique = new Map<string, ChangedEndpoint>()
  for (const e of endpoints) unique.set(`${key(e)} ${e.oldTarget}`, e)
  return [...unique.values()]
}

/** `198.19.100.10:80` as a ChangedEndpoint's oldTarget spells it. */
function parseTarget(text: string): NatTarget | undefined {
  const colon = text.lastIndexOf(':')
  const ip = parseIpv4(text.slice(0, colon))
  const port = Number(text.slice(colon + 1))
  return ip && Number.isInteger(port) ? {ip, port} : undefined
}
