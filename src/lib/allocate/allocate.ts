/**
 * The allocator: which address each served LoadBalancer Service should hold, decided from nothing
 * but the snapshot (pure, deterministic, oldest Service first), so that instances allocating at once
 * usually agree before they write. It proposes; the record is the Service's status, written with its
 * resourceVersion (sync/allocation.ts), and what is recorded is what planning reads.
 *
 * An address stays with a Service until the Service is deleted, stops being served, or its request
 * (addresses annotation, loadBalancerIP, pool annotation) asks for another. Two instances that raced
 * can record one address for two Services that may not share it: the younger one then moves.
 */
import {
  ADDRESSES_ANNOTATION,
  POOL_ANNOTATION,
  recordedAddresses,
  servesLoadBalancer,
  SHARED_IP_ANNOTATION,
} from '../mapping/loadbalancer.js'
import {readAllocated} from '../mapping/dynamic.js'
import {firstFree, poolAdmits, poolHands, poolListing, poolSize, type AddressPool, type PoolConfig} from '../mapping/pool.js'
import type {Labels} from '../mapping/label-selector.js'
import type {MappingResource, ServiceResource} from '../mapping/types.js'
import {ipv4ToInt, parseIpv4, type Ipv4} from '../net/ipv4.js'
import {namesOf, sortOldestFirst} from '../plan/order.js'

/** What the allocator decided for one Service. */
export type Decision =
  /** Holds `address` (already recorded, or newly assigned when `assigned`). */
  | {kind: 'hold'; service: ServiceResource; address: Ipv4; pool?: string; assigned: boolean}
  /** Gets no address, and why. */
  | {kind: 'pending'; service: ServiceResource; reason: string}
  /** No longer served: its recorded address goes back. */
  | {kind: 'release'; service: ServiceResource; address: Ipv4}

/** Addresses of one pool in use and free, and what is wrong with it. */
export interface PoolUsage {
  name: string
  inUse: number
  free: number
  overlapsWith: readonly string[]
}

export interface Allocation {
  /** One per served Service and per Service to release, oldest first. */
  decisions: Decision[]
  pools: PoolUsage[]
  /** Services holding an address no pool lists any more (the pool was deleted or shrunk). */
  orphaned: {service: ServiceResource; address: Ipv4}[]
}

export interface AllocationInput {
  services: readonly ServiceResource[]
  /** Real Mappings: their addresses, listed or allocated, are never handed out automatically. */
  mappings: readonly MappingResource[]
  pools: PoolConfig
  defaultLoadBalancer: boolean
  /** Each namespace's labels, for pools with a namespaceSelector; a namespace missing here matches no selector. */
  namespaceLabels?: ReadonlyMap<string, Labels>
}

/** Who holds an address: the Services, their namespace and sharing key, and the ports they use. */
interface Holding {
  services: ServiceResource[]
  namespace: string
  /** The allow-shared-ip key; undefined: the address is not shared. */
  key: string | undefined
  ports: Set<string>
}

/** Decides an address for every served LoadBalancer Service of `input`, and which addresses go back. */
export function allocate(input: AllocationInput): Allocation {
  const {pools} = input
  const held = new Map<Ipv4, Holding>()
  const staticAddresses = new Set<Ipv4>()
  const givenToMappings = new Set<Ipv4>()
  for (const mapping of input.mappings) {
    const addresses = mapping.spec?.addresses
    if (Array.isArray(addresses)) for (const text of addresses) addIfIp(staticAddresses, text)
    // An address given to a Mapping that asked for one (mapping/dynamic.ts) is as taken as one it lists, and counts as in use.
    const allocated = readAllocated(mapping.status?.allocated)
    for (const address of allocated?.addresses ?? []) {
      staticAddresses.add(address)
      if (allocated?.pool !== undefined) givenToMappings.add(address)
    }
  }
  const decided = new Map<ServiceResource, Decision>()
  const oldestFirst = sortOldestFirst(input.services, (s) => s)
  const served = oldestFirst.filter((service) => servesLoadBalancer(service, input.defaultLoadBalancer))
  // Recorded addresses first: an address a Service holds is never handed to another, however old.
  for (const service of served) {
    const kept = keepRecorded(service, pools, held)
    if (kept === undefined) continue
    decided.set(service, kept)
    take(held, kept.address, service)
  }
  // Then the Services asking for one address, before those taking any free one may take it.
  const undecided = served.filter((service) => !decided.has(service))
  const asking = undecided.filter((service) => requested(service).address !== undefined)
  const asks = new Set(asking)
  // Where each pool's free addresses start: `held` only grows during one allocation, so no pool is scanned twice.
  const cursors = new Map<string, number>()
  for (const service of [...asking, ...undecided.filter((service) => !asks.has(service))]) {
    const decision = decide(service, input, held, staticAddresses, cursors)
    decided.set(service, decision)
    if (decision.kind === 'hold') take(held, decision.address, service)
  }
  const decisions: Decision[] = []
  const orphaned: Allocation['orphaned'] = []
  for (const service of oldestFirst) {
    const decision = decided.get(service)
    if (decision === undefined) {
      const address = servesLoadBalancer(service, input.defaultLoadBalancer) ? undefined : releasable(service, pools)
      if (address !== undefined) decisions.push({kind: 'release', service, address})
      continue
    }
    decisions.push(decision)
    if (decision.kind === 'hold' && poolListing(pools, decision.address) === undefined) orphaned.push({service, address: decision.address})
  }
  return {decisions, pools: usage(pools, new Set([...held.keys(), ...givenToMappings])), orphaned}
}

/**
 * The recorded address, when it stays: the request (if any) still asks for it, the pool asked for
 * still lists it, and no older Service recorded it too without being able to share it.
 */
function keepRecorded(service: ServiceResource, pools: PoolConfig, held: Map<Ipv4, Holding>): Decision & {kind: 'hold'} | undefined {
  const [recorded] = recordedAddresses(service)
  if (recorded === undefined) return undefined
  const request = requested(service)
  if (request.reason !== undefined || (request.address !== undefined && request.address !== recorded)) return undefined
  const poolName = service.metadata?.annotations?.[POOL_ANNOTATION]
  const pool = poolListing(pools, recorded)
  if (request.address === undefined && typeof poolName === 'string' && poolName !== '' && pool !== undefined && pool.name !== poolName) return undefined
  if (sharingRefused(held.get(recorded), service) !== undefined) return undefined
  return {kind: 'hold', service, address: recorded, assigned: false}
}

function addIfIp(set: Set<Ipv4>, text: unknown): void {
  const ip = parseIpv4(text)
  if (ip !== undefined) set.add(ip)
}

/** A Service smartnat no longer serves still shows an address it recorded (ipMode Proxy, from a pool): that one goes back. */
function releasable(service: ServiceResource, pools: PoolConfig): Ipv4 | undefined {
  const ingress = service.status?.loadBalancer?.ingress ?? []
  for (const entry of ingress) {
    const ip = parseIpv4(entry?.ip)
    if (ip !== undefined && entry.ipMode === 'Proxy' && poolListing(pools, ip) !== undefined) return ip
  }
  return undefined
}

/** The (protocol, port)s a Service exposes, as `tcp/80`. */
export function servicePorts(service: ServiceResource): Set<string> {
  const ports = Array.isArray(service.spec?.ports) ? service.spec.ports : []
  return new Set(ports.map((port) => `${String(port?.protocol ?? 'TCP').toLowerCase()}/${port?.port}`))
}

function sharingKey(service: ServiceResource): string | undefined {
  const key = service.metadata?.annotations?.[SHARED_IP_ANNOTATION]
  return typeof key === 'string' && key !== '' ? key : undefined
}

function take(held: Map<Ipv4, Holding>, address: Ipv4, service: ServiceResource): void {
  const holding = held.get(address)
  const ports = servicePorts(service)
  if (holding === undefined) {
    held.set(address, {services: [service], namespace: namesOf(service).namespace, key: sharingKey(service), ports})
    return
  }
  holding.services.push(service)
  for (const port of ports) holding.ports.add(port)
}

/** Why `service` may not join the holders of an address, or undefined when it may. */
function sharingRefused(holding: Holding | undefined, service: ServiceResource): string | undefined {
  if (holding === undefined) return undefined
  const holder = holding.services[0]!
  const {namespace, name} = namesOf(holder)
  const key = sharingKey(service)
  if (key === undefined || holding.key !== key || holding.namespace !== namesOf(service).namespace) {
    return `it is held by ${namespace}/${name} (sharing needs the same ${SHARED_IP_ANNOTATION} key in the same namespace)`
  }
  const clash = [...servicePorts(service)].find((port) => holding.ports.has(port))
  if (clash !== undefined) return `${clash} on it is used by ${namespace}/${name}`
  return undefined
}

/** The address the Service asks for: the addresses annotation, else spec.loadBalancerIP; a reason when the request is unusable. */
function requested(service: ServiceResource): {address?: Ipv4; reason?: string} {
  const annotation = service.metadata?.annotations?.[ADDRESSES_ANNOTATION]
  const text = typeof annotation === 'string' && annotation.trim() !== '' ? annotation : service.spec?.loadBalancerIP
  if (typeof text !== 'string' || text.trim() === '') return {}
  const parts = text.split(',').map((part) => part.trim()).filter((part) => part !== '')
  const address = parseIpv4(parts[0])
  if (parts.length !== 1 || address === undefined) return {reason: `the requested address ${JSON.stringify(text)} must be one IPv4 address`}
  return {address}
}

function decide(service: ServiceResource, input: AllocationInput, held: Map<Ipv4, Holding>, staticAddresses: Set<Ipv4>, cursors: Map<string, number>): Decision {
  const {pools} = input
  const pending = (reason: string): Decision => ({kind: 'pending', service, reason})
  const request = requested(service)
  if (request.reason !== undefined) return pending(request.reason)
  const poolName = service.metadata?.annotations?.[POOL_ANNOTATION]
  const namespace = namesOf(service).namespace

  if (request.address !== undefined) {
    const address = request.address
    const refused = sharingRefused(held.get(address), service)
    if (refused !== undefined) return pending(`the requested address ${address} is taken: ${refused}`)
    const pool = poolListing(pools, address)
    if (pool === undefined) return pending(`the requested address ${address} is in no AddressPool`)
    if (!poolHands(pool, address)) return pending(`the requested address ${address} is in overlapping AddressPools ${[pool.name, ...pool.overlapsWith].join(', ')}`)
    if (!poolAdmits(pool, namespace, input.namespaceLabels?.get(namespace))) return pending(`AddressPool ${pool.name} does not admit namespace ${namespace}`)
    return {kind: 'hold', service, address, pool: pool.name, assigned: true}
  }

  const candidates = candidatePools(pools, poolName, namespace, input.namespaceLabels?.get(namespace))
  if (typeof candidates === 'string') return pending(candidates)
  const admitted = (address: Ipv4) => candidates.some((pool) => poolHands(pool, address))
  // Sharing first: an address its key-mates hold, lowest first, when the ports do not clash.
  if (sharingKey(service) !== undefined) {
    const shared = [...held.entries()]
      .filter(([address, holding]) => admitted(address) && sharingRefused(holding, service) === undefined)
      .map(([address]) => address)
      .sort((a, b) => ipv4ToInt(a) - ipv4ToInt(b))[0]
    if (shared !== undefined) return {kind: 'hold', service, address: shared, pool: poolListing(pools, shared)!.name, assigned: true}
  }
  for (const pool of candidates) {
    const address = firstFree(pool, (ip) => held.has(ip) || staticAddresses.has(ip), cursors.get(pool.name))
    if (address === undefined) {
      cursors.set(pool.name, Number.MAX_SAFE_INTEGER)
      continue
    }
    cursors.set(pool.name, ipv4ToInt(address))
    return {kind: 'hold', service, address, pool: pool.name, assigned: true}
  }
  const names = candidates.map((pool) => pool.name).join(', ')
  return pending(candidates.length === 1 ? `AddressPool ${names} has no free address` : `AddressPools ${names} have no free address`)
}

/** The pools a Service may draw from, in name order, or why there is none. */
function candidatePools(pools: PoolConfig, poolName: string | undefined, namespace: string, labels: Labels | undefined): AddressPool[] | string {
  if (typeof poolName === 'string' && poolName !== '') {
    const pool = pools.pools.get(poolName)
    if (pool === undefined) return `AddressPool ${poolName} does not exist${pools.errors.some((e) => e.message.startsWith(`parsing address pool ${poolName}:`)) ? ' (it does not parse)' : ''}`
    if (!poolAdmits(pool, namespace, labels)) return `AddressPool ${poolName} does not admit namespace ${namespace}`
    return [pool]
  }
  const auto = [...pools.pools.values()].filter((pool) => pool.autoAssign)
  if (auto.length === 0) return 'no AddressPool assigns addresses automatically (create one, or name one with the pool annotation)'
  const admitting = auto.filter((pool) => poolAdmits(pool, namespace, labels))
  if (admitting.length === 0) return `no AddressPool admits namespace ${namespace}`
  return admitting
}

function usage(pools: PoolConfig, inUseAddresses: ReadonlySet<Ipv4>): PoolUsage[] {
  return [...pools.pools.values()].map((pool) => {
    const inUse = [...inUseAddresses].filter((address) => poolHands(pool, address)).length
    return {name: pool.name, inUse, free: poolSize(pool) - inUse, overlapsWith: pool.overlapsWith}
  })
}
