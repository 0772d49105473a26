/**
 * Everything that asks for an exposure, as one list of Mapping-shaped objects: the Mappings, then
 * the LoadBalancer Services smartnat serves (mapping/loadbalancer.ts). Done before planning, so
 * that conflicts, allow-lists, reply routing, egress and verdicts exist once, for both.
 */
import {serviceExposure, servesLoadBalancer} from '../mapping/loadbalancer.js'
import type {MappingResource, ServiceResource} from '../mapping/types.js'
import type {Snapshot} from './model.js'

interface Exposures {
  defaultLoadBalancer: boolean
  list: MappingResource[]
}

const byServices = new WeakMap<readonly ServiceResource[], Exposures>()
const joined = new WeakMap<readonly MappingResource[], {exposures: MappingResource[]; mappings: MappingResource[]}>()

/**
 * `snapshot` with the served LoadBalancer Services among its Mappings (their class, or none with
 * `defaultLoadBalancer`). Unchanged lists give the very same arrays and objects again, so callers
 * that compare by identity (the plan memo, the watch loop's skip check) see only what changed.
 */
export function withServiceExposures(snapshot: Snapshot, defaultLoadBalancer: boolean): Snapshot {
  const exposures = exposuresOf(snapshot.services, defaultLoadBalancer)
  if (exposures.length === 0) return snapshot
  let both = joined.get(snapshot.mappings)
  if (both?.exposures !== exposures) joined.set(snapshot.mappings, (both = {exposures, mappings: [...snapshot.mappings, ...unnamed(exposures, snapshot.mappings)]}))
  return {...snapshot, mappings: both.mappings}
}

/** The exposures whose namespace/name no Mapping has: a Mapping keeps its name, and the Service waits for it to go. */
function unnamed(exposures: readonly MappingResource[], mappings: readonly MappingResource[]): MappingResource[] {
  const taken = new Set(mappings.map((mapping) => JSON.stringify([mapping.metadata?.namespace, mapping.metadata?.name])))
  return exposures.filter((exposure) => !taken.has(JSON.stringify([exposure.metadata.namespace, exposure.metadata.name])))
}

function exposuresOf(services: readonly ServiceResource[], defaultLoadBalancer: boolean): MappingResource[] {
  const cached = byServices.get(services)
  if (cached?.defaultLoadBalancer === defaultLoadBalancer) return cached.list
  const list = services.filter((service) => servesLoadBalancer(service, defaultLoadBalancer)).map(serviceExposure)
  byServices.set(services, {defaultLoadBalancer, list})
  return list
}
