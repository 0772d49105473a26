/**
 * AddressPools (smartnat.aureacentral.com/v1alpha1, cluster-scoped): every pool of a snapshot parsed
 * and validated into one immutable PoolConfig first, as MetalLB's config.For does, with errors naming
 * the pool. An address belongs to one pool only: where pools overlap, the overlap is reported on
 * both and allocated from neither.
 */
import {intToIpv4, ipv4ToInt, parseCidr, parseIpv4, prefixMask, cidrParts, type Ipv4} from '../net/ipv4.js'
import {parseLabelSelector, selectorMatches, type LabelSelector, type Labels} from './label-selector.js'
import {isDns1123Label, isDns1123Subdomain, showValue} from './names.js'
import type {ObjectMeta} from './types.js'

export const ADDRESS_POOL_KIND = 'AddressPool'
export const ADDRESS_POOL_PLURAL = 'addresspools'

/** An AddressPool as read from YAML or the API: nothing in spec is trusted until parsed. */
export interface AddressPoolResource {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec?: {addresses?: unknown; autoAssign?: unknown; namespaces?: unknown; namespaceSelector?: unknown}
  status?: AddressPoolStatus
}

export interface AddressPoolStatus {
  inUse?: number
  free?: number
  conditions?: {type: string; status: 'True' | 'False' | 'Unknown'; reason: string; message: string; lastTransitionTime?: string}[]
}

/** Inclusive range of addresses as numbers. */
export interface AddressRange {
  first: number
  last: number
}

/** A pool that parsed: its ranges sorted and merged, and who may draw from it. */
export interface AddressPool {
  name: string
  /** Sorted, disjoint, not adjacent. */
  ranges: readonly AddressRange[]
  autoAssign: boolean
  /** Only these namespaces may draw from it; undefined: any. */
  namespaces?: readonly string[]
  /** Only namespaces whose labels match may draw from it; undefined: any. With `namespaces`, both must hold. */
  namespaceSelector?: LabelSelector
  /** Parts of `ranges` other pools also list: never allocated. */
  overlaps: readonly AddressRange[]
  /** The other pools sharing addresses with this one, by name. */
  overlapsWith: readonly string[]
}

/** Every pool of a snapshot, parsed; immutable once made. */
export interface PoolConfig {
  /** By name. */
  pools: ReadonlyMap<string, AddressPool>
  /** Pools that did not parse, with why: `parsing address pool NAME: ...`. */
  errors: readonly Error[]
}

/** Thrown inside this module only, to stop at a pool's first error. */
class Invalid extends Error {}

function fail(reason: string): never {
  throw new Invalid(reason)
}

/** Parses every pool; one that does not parse is left out and reported, the rest still count. */
export function poolConfig(resources: readonly AddressPoolResource[]): PoolConfig {
  const parsed: Omit<AddressPool, 'overlaps' | 'overlapsWith'>[] = []
  const errors: Error[] = []
  const seen = new Set<string>()
  for (const resource of resources) {
    const name = resource.metadata?.name
    try {
      if (!isDns1123Subdomain(name)) fail(`metadata.name ${showValue(name)} must be a DNS-1123 subdomain`)
      if (seen.has(name)) fail('listed twice')
      seen.add(name)
      parsed.push(parsePool(name, resource))
    } catch (error) {
      if (!(error instanceof Invalid)) throw error
      errors.push(new Error(`parsing address pool ${typeof name === 'string' ? name : showValue(name)}: ${error.message}`, {cause: error}))
    }
  }
  parsed.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  const pools = new Map<string, AddressPool>()
  for (const pool of parsed) {
    const overlaps: AddressRange[] = []
    const overlapsWith: string[] = []
    for (const other of parsed) {
      if (other === pool) continue
      const shared = intersect(pool.ranges, other.ranges)
      if (shared.length === 0) continue
      overlapsWith.push(other.name)
      overlaps.push(...shared)
    }
    pools.set(pool.name, {...pool, overlaps: merge(overlaps), overlapsWith})
  }
  return {pools, errors}
}

function parsePool(name: string, resource: AddressPoolResource): Omit<AddressPool, 'overlaps' | 'overlapsWith'> {
  const spec = resource.spec
  if (spec === undefined || spec === null || typeof spec !== 'object') fail('spec is missing')
  const {addresses, autoAssign, namespaces, namespaceSelector} = spec
  if (!Array.isArray(addresses) || addresses.length === 0) fail('spec.addresses must list at least one CIDR or first-last range')
  const ranges = merge(addresses.map((text: unknown, i) => parseRange(text, `spec.addresses[${i}]`)))
  if (autoAssign !== undefined && autoAssign !== null && typeof autoAssign !== 'boolean') fail(`spec.autoAssign ${showValue(autoAssign)} must be true or false`)
  const pool: Omit<AddressPool, 'overlaps' | 'overlapsWith'> = {name, ranges, autoAssign: autoAssign !== false}
  if (namespaces !== undefined && namespaces !== null) {
    if (!Array.isArray(namespaces)) fail('spec.namespaces must be a list of namespace names')
    namespaces.forEach((namespace: unknown, i) => {
      if (!isDns1123Label(namespace)) fail(`spec.namespaces[${i}] ${showValue(namespace)} is not a namespace name`)
    })
    pool.namespaces = [...(namespaces as string[])].sort()
  }
  if (namespaceSelector !== undefined && namespaceSelector !== null) {
    const selector = parseLabelSelector(namespaceSelector, 'spec.namespaceSelector')
    if (typeof selector === 'string') fail(selector)
    pool.namespaceSelector = selector
  }
  return pool
}

/** `a.b.c.d/len`, `a.b.c.d` or `first-last`, as a range of numbers. */
export function parseRange(text: unknown, path: string): AddressRange {
  if (typeof text !== 'string') fail(`${path} ${showValue(text)} must be a CIDR or a first-last range`)
  const dash = text.indexOf('-')
  if (dash !== -1) {
    const first = parseIpv4(text.slice(0, dash).trim())
    const last = parseIpv4(text.slice(dash + 1).trim())
    if (!first || !last) fail(`${path} ${showValue(text)}: a range must be two IPv4 addresses, first-last`)
    const range = {first: ipv4ToInt(first), last: ipv4ToInt(last)}
    if (range.first > range.last) fail(`${path} ${showValue(text)}: the first address is after the last`)
    return range
  }
  const parsed = parseCidr(text)
  if (!parsed.ok) fail(`${path} ${showValue(text)}: ${parsed.reason}`)
  const {network, length} = cidrParts(parsed.cidr)
  const first = ipv4ToInt(network)
  return {first, last: (first | ~prefixMask(length)) >>> 0}
}

/** Sorted, with overlapping and adjacent ranges joined. */
function merge(ranges: readonly AddressRange[]): AddressRange[] {
  const sorted = [...ranges].sort((a, b) => a.first - b.first)
  const merged: AddressRange[] = []
  for (const range of sorted) {
    const last = merged[merged.length - 1]
    if (last !== undefined && range.first <= last.last + 1) last.last = Math.max(last.last, range.last)
    else merged.push({...range})
  }
  return merged
}

function intersect(a: readonly AddressRange[], b: readonly AddressRange[]): AddressRange[] {
  const shared: AddressRange[] = []
  for (const x of a) {
    for (const y of b) {
      const first = Math.max(x.first, y.first)
      const last = Math.min(x.last, y.last)
      if (first <= last) shared.push({first, last})
    }
  }
  return shared
}

function inRanges(ranges: readonly AddressRange[], value: number): boolean {
  return ranges.some((range) => range.first <= value && value <= range.last)
}

/** Whether `pool` may hand out `ip`: it lists it, and no other pool does. */
export function poolHands(pool: AddressPool, ip: Ipv4): boolean {
  const value = ipv4ToInt(ip)
  return inRanges(pool.ranges, value) && !inRanges(pool.overlaps, value)
}

/** The pool that lists `ip`, if any (overlapping pools included). */
export function poolListing(config: PoolConfig, ip: Ipv4): AddressPool | undefined {
  const value = ipv4ToInt(ip)
  for (const pool of config.pools.values()) if (inRanges(pool.ranges, value)) return pool
  return undefined
}

/**
 * Whether a Service of `namespace` may draw from `pool`: the namespace is listed (when the pool lists
 * any) and its labels match (when the pool has a selector; a namespace whose labels are unknown matches none).
 */
export function poolAdmits(pool: AddressPool, namespace: string, labels?: Labels): boolean {
  if (pool.namespaces !== undefined && !pool.namespaces.includes(namespace)) return false
  if (pool.namespaceSelector === undefined) return true
  return labels !== undefined && selectorMatches(pool.namespaceSelector, labels)
}

/** How many addresses `pool` can hand out (its overlaps excluded). */
export function poolSize(pool: AddressPool): number {
  const count = (ranges: readonly AddressRange[]) => ranges.reduce((sum, range) => sum + range.last - range.first + 1, 0)
  return count(pool.ranges) - count(pool.overlaps)
}

/**
 * The first address of `pool`, in address order, that it hands out and `taken` does not hold; from
 * the address numbered `from` on when given (a caller whose taken addresses only grow need not scan
 * again what it found taken before).
 */
export function firstFree(pool: AddressPool, taken: (ip: Ipv4) => boolean, from = 0): Ipv4 | undefined {
  for (const range of pool.ranges) {
    if (range.last < from) continue
    for (let value = Math.max(range.first, from); value <= range.last; value++) {
      if (inRanges(pool.overlaps, value)) continue
      const ip = intToIpv4(value)
      if (!taken(ip)) return ip
    }
  }
  return undefined
}
