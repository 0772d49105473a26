/**
 * What conntrack cleanup needs to know of mode-direct Mappings: the pods their Services still list.
 * A pod that is listed (ready or not, terminating or not) keeps its established connections; one
 * that no EndpointSlice lists any more is gone, and its connections are cut.
 */
import {ADMITTED_CONNECTION_MARK} from '../backend/backend.js'
import type {DirectFlowEndpoint} from '../host/conntrack.js'
import {compareIpv4, type Ipv4} from '../net/ipv4.js'
import {interfaceMark} from '../net/marks.js'
import {indexEndpoints} from '../plan/endpoints.js'
import type {NatModel, Snapshot} from '../plan/model.js'
import {dedupeByName, namesOf} from '../plan/order.js'

/** The pods the Services of the programmed mode-direct Mappings list. */
export interface DirectListing {
  /** By `namespace/name` of each programmed mode-direct Mapping. */
  byMapping: Map<string, Ipv4[]>
  /** All of them, once each, sorted. */
  all: Ipv4[]
}

/** Lists, for each mode-direct Mapping of `model`, every pod any EndpointSlice of its Service names. */
export function directListing(snapshot: Snapshot, model: NatModel): DirectListing {
  const byMapping = new Map<string, Ipv4[]>()
  const direct = model.mappings.filter((m) => m.groups !== undefined)
  if (direct.length === 0) return {byMapping, all: []}
  // The model keeps no Service name: the resource the planner kept (dedupeByName) has it, validated.
  const resources = new Map(dedupeByName(snapshot.mappings).map((r) => [`${namesOf(r).namespace}/${namesOf(r).name}`, r]))
  const {listedIPsOf} = indexEndpoints(snapshot.endpointSlices)
  const all = new Set<Ipv4>()
  for (const m of direct) {
    const id = `${m.namespace}/${m.name}`
    const serviceName = resources.get(id)?.spec?.serviceName
    const listed = typeof serviceName === 'string' ? listedIPsOf(m.namespace, serviceName) : []
    byMapping.set(id, listed)
    for (const ip of listed) all.add(ip)
  }
  return {byMapping, all: [...all].sort(compareIpv4)}
}

/** Each external endpoint of a mode-direct Mapping, with the addresses its connections may keep answering from. */
export function directFlowEndpoints(model: NatModel, listing: DirectListing): DirectFlowEndpoint[] {
  const endpoints: DirectFlowEndpoint[] = []
  for (const m of model.mappings) {
    const listed = listing.byMapping.get(`${m.namespace}/${m.name}`)
    if (listed === undefined) continue
    // The ClusterIP answers connections made before the Mapping moved from mode service.
    const keep = new Set<Ipv4>(m.serviceVIP === undefined ? listed : [...listed, m.serviceVIP])
    for (const {address, protocol, port} of m.endpoints) endpoints.push({address, protocol, port, keep})
  }
  return endpoints
}

/** The connection marks smartnat gives what it admits on the interfaces mode-direct Mappings use, one per interface. */
export function interfaceMarks(model: NatModel, listing: DirectListing): {value: number; mask: number}[] {
  const names = new Set(model.mappings.filter((m) => listing.byMapping.has(`${m.namespace}/${m.name}`)).flatMap((m) => m.addresses.map((a) => a.interface)))
  const mask = ADMITTED_CONNECTION_MARK.any | ADMITTED_CONNECTION_MARK.none
  return model.interfaces.filter((i) => names.has(i.name)).map((i) => ({value: interfaceMark(i.index), mask}))
}
