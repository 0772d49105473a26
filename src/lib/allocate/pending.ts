/**
 * Before planning: each Mapping that asks for an address or a port and may not be planned on its
 * record yet is marked pending with the reason (MappingResource.pending), which planning reports as
 * its verdict. The plan stays pure and never reads pools: this step runs the allocator on the same
 * snapshot and says why a Mapping waits (pool exhausted, no free port, allocation not recorded yet).
 */
import type {PortRange} from '../mapping/dynamic.js'
import {mayAskForAllocation} from '../mapping/dynamic.js'
import {namespaceLabels} from '../mapping/namespace.js'
import {poolConfig} from '../mapping/pool.js'
import type {MappingResource} from '../mapping/types.js'
import type {Snapshot} from '../plan/model.js'
import {allocateMappings, type MappingDecision} from './mappings.js'

export interface PendingOptions {
  defaultLoadBalancer: boolean
  dynamicPorts: PortRange
  /** False for the file source, which records nothing: only what status.allocated holds is served. */
  allocates: boolean
}

/** The reason a Mapping waits for the one pass between its allocation being decided and recorded: nothing is wrong. */
export const NOT_RECORDED = 'allocation not recorded yet: it is written to status.allocated after this pass, and served from the next'

/** The reason a Mapping read from files waits: nothing allocates there. */
export const FILE_NOT_ALLOCATED = 'not allocated: --from-file allocates nothing, and status.allocated records no address and ports that fit the spec'

interface Marked {
  services: Snapshot['services']
  pools: Snapshot['addressPools']
  namespaces: Snapshot['namespaces']
  key: string
  mappings: MappingResource[]
}

const byMappings = new WeakMap<readonly MappingResource[], Marked>()
const copies = new WeakMap<MappingResource, {reason: string; copy: MappingResource}>()
const asking = new WeakMap<readonly MappingResource[], boolean>()

// A watch pass after a change elsewhere hands over the same list again: it is looked through once.
function anyAsks(mappings: readonly MappingResource[]): boolean {
  let asks = asking.get(mappings)
  if (asks === undefined) asking.set(mappings, (asks = mappings.some(mayAskForAllocation)))
  return asks
}

/**
 * `snapshot` with every waiting Mapping replaced by a copy marked with why it waits. Unchanged lists
 * give the very same arrays and objects again (the plan memo and the watch loop compare by identity);
 * a snapshot in which no Mapping asks for allocation is returned as it is.
 */
export function withPendingAllocations(snapshot: Snapshot, options: PendingOptions): Snapshot {
  if (!anyAsks(snapshot.mappings)) return snapshot
  const key = JSON.stringify(options)
  const cached = byMappings.get(snapshot.mappings)
  if (cached?.services === snapshot.services && cached.pools === snapshot.addressPools && cached.namespaces === snapshot.namespaces && cached.key === key) return {...snapshot, mappings: cached.mappings}
  const decisions = allocateMappings({
    mappings: snapshot.mappings,
    services: snapshot.services,
    pools: poolConfig(snapshot.addressPools ?? []),
    defaultLoadBalancer: options.defaultLoadBalancer,
    dynamicPorts: options.dynamicPorts,
    namespaceLabels: namespaceLabels(snapshot.namespaces ?? []),
  })
  const reasons = new Map<MappingResource, string>()
  for (const decision of decisions) {
    const reason = pendingReason(decision, options.allocates)
    if (reason !== undefined) reasons.set(decision.mapping, reason)
  }
  const mappings = snapshot.mappings.map((mapping) => {
    const reason = reasons.get(mapping)
    return reason === undefined ? mapping : marked(mapping, reason)
  })
  byMappings.set(snapshot.mappings, {services: snapshot.services, pools: snapshot.addressPools, namespaces: snapshot.namespaces, key, mappings})
  return {...snapshot, mappings}
}

/** Why a decision leaves its Mapping unplanned, or undefined when it is planned on its record. */
function pendingReason(decision: MappingDecision, allocates: boolean): string | undefined {
  if (decision.kind === 'release' || (decision.kind === 'hold' && !decision.assigned)) return undefined
  if (!allocates) return FILE_NOT_ALLOCATED
  if (decision.kind === 'pending') return `not allocated: ${decision.reason}`
  return NOT_RECORDED
}

function marked(mapping: MappingResource, reason: string): MappingResource {
  const known = copies.get(mapping)
  if (known?.reason === reason) return known.copy
  const copy = {...mapping, pending: reason}
  copies.set(mapping, {reason, copy})
  return copy
}
