/**
 * The allocator of Mappings that ask for an address or a port (mapping/dynamic.ts): pure,
 * deterministic, oldest Mapping first, like the Services' (allocate.ts), so that instances usually
 * agree before they write. It proposes; the record is the Mapping's status.allocated, written with
 * its resourceVersion (sync/mapping-allocation.ts).
 *
 * The rule: a Mapping naming a pool gets an address of its own, one that no Service holds, no
 * Mapping lists and no other Mapping was given; its ports left empty get the lowest free ports of
 * the dynamic range on it. A Mapping listing its addresses and leaving ports empty gets, for each,
 * the lowest port of the range that is free for that protocol on every one of its addresses: no
 * Service, no Mapping and no other allocation uses it there.
 *
 * What is recorded stays until the Mapping is deleted or its request (pool, addresses, the ports
 * left empty) changes. Two instances that raced can record one address, or one port, twice: the
 * younger Mapping then moves, and a Service keeps an address a Mapping was also given. An address
 * or port recorded for a Mapping moves when an older Mapping lists it, and stays when a younger one does.
 */
import {
  asksForAllocation,
  fittingAddresses,
  formatPortRange,
  readAllocated,
  recordedPort,
  requestedPortKey,
  type Allocated,
  type MappingRequest,
  type PortRange,
} from '../mapping/dynamic.js'
import type {Labels} from '../mapping/label-selector.js'
import {firstFree, poolAdmits, type PoolConfig} from '../mapping/pool.js'
import type {MappingResource, Protocol, ServiceResource} from '../mapping/types.js'
import {validateRequest} from '../mapping/validate.js'
import type {Ipv4} from '../net/ipv4.js'
import {createdAt, namesOf, sortOldestFirst} from '../plan/order.js'
import {allocate, servicePorts} from './allocate.js'

/** What the allocator decided for one Mapping. */
export type MappingDecision =
  /** Holds `allocated`: as recorded, or newly decided when `assigned`. */
  | {kind: 'hold'; mapping: MappingResource; allocated: Allocated; assigned: boolean}
  /** Not all it asks for can be given, and why; `kept`: what of its record still stands. */
  | {kind: 'pending'; mapping: MappingResource; reason: string; kept?: Allocated}
  /** Asks for nothing any more: its record goes. */
  | {kind: 'release'; mapping: MappingResource}

export interface MappingAllocationInput {
  /** The Mappings, not the Services seen as Mappings. */
  mappings: readonly MappingResource[]
  services: readonly ServiceResource[]
  pools: PoolConfig
  defaultLoadBalancer: boolean
  dynamicPorts: PortRange
  /** Each namespace's labels, for pools with a namespaceSelector; a namespace missing here matches no selector. */
  namespaceLabels?: ReadonlyMap<string, Labels>
}

// Enough for any Mapping the CRD admits (128 ports); planning applies --max-ports-per-mapping itself.
const PORTS_LIMIT = 1024

interface Asking {
  mapping: MappingResource
  request: MappingRequest
  namespace: string
  recorded: Allocated | undefined
  addresses?: Ipv4[]
  /** Port given to each spec port left empty, by requestedPortKey. */
  ports: Map<string, number>
}

/** Who holds what: addresses held, and the (protocol, port)s in use on each address. */
class Taken {
  /** Since when each address is held (creationTimestamp in ms): -Infinity for Services and allocations, which always keep theirs. */
  readonly addresses = new Map<Ipv4, number>()
  /** The same for each `protocol/port` in use on an address. */
  readonly ports = new Map<Ipv4, Map<string, number>>()

  holdAddress(address: Ipv4, since = Number.NEGATIVE_INFINITY): void {
    this.addresses.set(address, Math.min(since, this.addresses.get(address) ?? Number.POSITIVE_INFINITY))
  }

  usePort(address: Ipv4, protocol: string, port: number, since = Number.NEGATIVE_INFINITY): void {
    const used = this.ports.get(address) ?? new Map<string, number>()
    const key = `${protocol}/${port}`
    this.ports.set(address, used.set(key, Math.min(since, used.get(key) ?? Number.POSITIVE_INFINITY)))
  }

  /** Whether no one holding `address` since `before` or earlier uses the port on any of `addresses`. */
  portFree(addresses: readonly Ipv4[], protocol: Protocol, port: number, before = Number.POSITIVE_INFINITY): boolean {
    return addresses.every((address) => {
      const since = this.ports.get(address)?.get(`${protocol}/${port}`)
      return since === undefined || since > before
    })
  }
}

/** Decides addresses and ports for every Mapping that asks for them, and which records go. */
export function allocateMappings(input: MappingAllocationInput): MappingDecision[] {
  const taken = new Taken()
  // Services first: the Services' allocator sees every Mapping's record as taken, and keeps its own.
  const services = allocate({services: input.services, mappings: input.mappings, pools: input.pools, defaultLoadBalancer: input.defaultLoadBalancer, ...(input.namespaceLabels === undefined ? {} : {namespaceLabels: input.namespaceLabels})})
  for (const decision of services.decisions) {
    if (decision.kind !== 'hold') continue
    taken.holdAddress(decision.address)
    for (const key of servicePorts(decision.service)) {
      const [protocol, port] = key.split('/')
      taken.usePort(decision.address, protocol!, Number(port))
    }
  }
  const asking: Asking[] = []
  const decisions = new Map<MappingResource, MappingDecision>()
  const options = {maxPortsPerMapping: PORTS_LIMIT}
  for (const mapping of sortOldestFirst(input.mappings, (m) => m)) {
    const checked = validateRequest(mapping, options)
    // An invalid spec keeps its record: it is told why it is invalid, and a fixed spec finds its allocation again.
    if (!checked.ok) continue
    const {request} = checked
    // What a Mapping lists is held since it was created: what is recorded for an older Mapping stays with it (the planner's oldest-wins rule settles the overlap).
    for (const address of request.addresses) {
      taken.holdAddress(address, createdAt(mapping))
      for (const port of request.ports) if (port.port !== undefined) taken.usePort(address, port.protocol, port.port, createdAt(mapping))
    }
    if (asksForAllocation(request)) asking.push({mapping, request, namespace: namesOf(mapping).namespace, recorded: readAllocated(mapping.status?.allocated), ports: new Map()})
    else if (mapping.status?.allocated !== undefined && mapping.status.allocated !== null) decisions.set(mapping, {kind: 'release', mapping})
  }
  // Records first: what a Mapping holds is never given to another, however old.
  for (const entry of asking) keepRecorded(entry, taken)
  for (const entry of asking) decisions.set(entry.mapping, complete(entry, input, taken))
  return input.mappings.flatMap((mapping) => {
    const decision = decisions.get(mapping)
    return decision === undefined ? [] : [decision]
  })
}

/** Takes what of the record still fits the request and is not held by a Service or an older Mapping. */
function keepRecorded(entry: Asking, taken: Taken): void {
  const {request, recorded, mapping} = entry
  const addresses = request.addressPool === undefined ? request.addresses : fittingAddresses(request, recorded)
  if (addresses === undefined) return
  if (request.addressPool !== undefined) {
    const address = addresses[0]!
    const since = taken.addresses.get(address)
    if (since !== undefined && since <= createdAt(mapping)) return
    taken.holdAddress(address)
    for (const port of request.ports) if (port.port !== undefined) taken.usePort(address, port.protocol, port.port)
  }
  entry.addresses = addresses
  if (recorded === undefined || fittingAddresses(request, recorded) === undefined) return
  for (const port of request.ports) {
    if (port.port !== undefined) continue
    const number = recordedPort(recorded, port)
    if (number === undefined || !taken.portFree(addresses, port.protocol, number, createdAt(mapping)) || request.ports.some((p) => p.port === number && p.protocol === port.protocol)) continue
    entry.ports.set(requestedPortKey(port), number)
    for (const address of addresses) taken.usePort(address, port.protocol, number)
  }
}

/** Gives the entry what it still lacks: an address of its pool, then ports of the range. */
function complete(entry: Asking, input: MappingAllocationInput, taken: Taken): MappingDecision {
  const {mapping, request, namespace} = entry
  // A Mapping listing its addresses keeps a record only for the ports it holds.
  const kept = request.addressPool === undefined && entry.ports.size === 0 ? undefined : record(entry)
  const pending = (reason: string): MappingDecision => ({kind: 'pending', mapping, reason, ...(kept === undefined ? {} : {kept})})
  let addresses = entry.addresses
  if (addresses === undefined) {
    const poolName = request.addressPool!
    const pool = input.pools.pools.get(poolName)
    if (pool === undefined) {
      const broken = input.pools.errors.some((error) => error.message.startsWith(`parsing address pool ${poolName}:`))
      return pending(`AddressPool ${poolName} does not exist${broken ? ' (it does not parse)' : ''}`)
    }
    if (!poolAdmits(pool, namespace, input.namespaceLabels?.get(namespace))) return pending(`AddressPool ${poolName} does not admit namespace ${namespace}`)
    const address = firstFree(pool, (ip) => taken.addresses.has(ip))
    if (address === undefined) return pending(`AddressPool ${poolName} has no free address`)
    addresses = [address]
  }
  const ports = new Map(entry.ports)
  const own = new Set(request.ports.flatMap((port) => (port.port === undefined ? [] : [`${port.protocol}/${port.port}`])))
  for (const port of request.ports) {
    const key = requestedPortKey(port)
    if (port.port !== undefined || ports.has(key)) continue
    const number = freePort(input.dynamicPorts, (candidate) => !own.has(`${port.protocol}/${candidate}`) && taken.portFree(addresses, port.protocol, candidate))
    if (number === undefined) return pending(`no free ${port.protocol} port in ${formatPortRange(input.dynamicPorts)} on ${addresses.join(', ')}`)
    ports.set(key, number)
    own.add(`${port.protocol}/${number}`)
  }
  // Taken only once all is found: a Mapping left pending holds nothing it was not recorded with.
  if (entry.addresses === undefined) taken.holdAddress(addresses[0]!)
  for (const port of request.ports) {
    const number = port.port ?? ports.get(requestedPortKey(port))!
    for (const address of addresses) taken.usePort(address, port.protocol, number)
  }
  const allocated = record({...entry, addresses, ports})!
  return {kind: 'hold', mapping, allocated, assigned: !sameAllocation(entry.recorded, allocated)}
}

/** The allocation of an entry, as recorded: its addresses, and its ports in spec order; undefined without addresses. */
function record(entry: Pick<Asking, 'request' | 'addresses' | 'ports'>): Allocated | undefined {
  const {request, addresses, ports} = entry
  if (addresses === undefined) return undefined
  const given = request.ports.flatMap((port) => {
    const number = port.port === undefined ? ports.get(requestedPortKey(port)) : undefined
    return number === undefined ? [] : [{protocol: port.protocol, servicePort: port.servicePort, port: number}]
  })
  return {...(request.addressPool === undefined ? {} : {pool: request.addressPool}), addresses, ports: given}
}

function freePort(range: PortRange, free: (port: number) => boolean): number | undefined {
  for (let port = range.first; port <= range.last; port++) if (free(port)) return port
  return undefined
}

/** Whether two records say the same, field by field. */
export function sameAllocation(a: Allocated | undefined, b: Allocated | undefined): boolean {
  return JSON.stringify(a ?? null) === JSON.stringify(b ?? null)
}
