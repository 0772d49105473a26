/** The ipsets of the iptables backend, in the exact text `ipset save` prints. */
import {cidrParts, type Cidr, type Ipv4} from '../../net/ipv4.js'
import type {Protocol} from '../../mapping/types.js'
import type {NatEgress, NatModel} from '../../plan/model.js'
import type {IpsetState} from './types.js'
import {ALLOW_SET, ENDPOINTS_SET, UNSERVED_SET, egressInterfaceSetName, egressSetName} from './names.js'
import {flat} from '../../net/fitted.js'

export const ALLOW_SET_TYPE = 'hash:ip,port,net'
export const ENDPOINTS_SET_TYPE = 'hash:ip,port'
export const EGRESS_SET_TYPE = 'hash:ip'

const MIN_MAXELEM = 65536
const MIN_HASHSIZE = 1024
/** Entries per bucket at the size the kernel grows a hash set to on its own (measured: 80,000 entries end at 32768). */
const ENTRIES_PER_BUCKET = 4

/**
 * Creation options for a set that must hold `entries` elements. maxelem grows in powers of two so
 * it changes rarely. hashsize starts where the kernel would grow it anyway: filling a set created
 * at 1024 rehashes it at every doubling, which made restoring 80,000 entries 15 % slower. Read-back
 * and diff ignore hashsize, so a set whose entry count changes is not rewritten for it.
 */
export function setOptions(entries: number): string {
  let maxelem = MIN_MAXELEM
  while (maxelem < entries) maxelem *= 2
  let hashsize = MIN_HASHSIZE
  while (hashsize * ENTRIES_PER_BUCKET < entries) hashsize *= 2
  return `family inet hashsize ${hashsize} maxelem ${maxelem}`
}

/** `ipset save` prints a /32 net as the bare address. */
function savedNet(cidr: Cidr): string {
  const {network, length} = cidrParts(cidr)
  return length === 32 ? network : cidr
}

/** hash:ip,port,net cannot hold a /0, so everything is stored as its two /1 halves. */
export function storableNets(cidr: Cidr): string[] {
  return cidrParts(cidr).length === 0 ? ['0.0.0.0/1', '128.0.0.0/1'] : [savedNet(cidr)]
}

export function endpointEntry(address: Ipv4, protocol: Protocol, port: number): string {
  return flat(`${address},${protocol}:${port}`)
}

/** An allow-list entry: an endpoint entry and one of the nets storableNets gives for a source. */
export function allowEntry(endpoint: string, net: string): string {
  return flat(`${endpoint},${net}`)
}

/** Entries are sorted by plain string comparison, the order read-back uses too, and deduplicated. */
export function canonicalEntries(entries: string[]): string[] {
  entries.sort()
  let kept = 0
  for (let i = 0; i < entries.length; i++) if (i === 0 || entries[i] !== entries[kept - 1]) entries[kept++] = entries[i]!
  entries.length = kept
  return entries
}

/** A set holding `entries`, which it takes over (sorts and deduplicates in place). */
export function set(name: string, type: string, entries: string[]): IpsetState {
  const sorted = canonicalEntries(entries)
  return {name, type, options: setOptions(sorted.length), entries: sorted}
}

/**
 * All sets the model needs, sorted by name; `egressByInterface` is egressPodsByInterface(model.egress).
 * The unserved set exists, empty or not, whenever a Mapping is in mode direct (`direct`).
 */
export function renderSets(model: NatModel, egressByInterface: ReadonlyMap<string, ReadonlyMap<Ipv4, unknown>>, direct: boolean): IpsetState[] {
  const allow: string[] = []
  const endpoints: string[] = []
  const unserved: string[] = []
  for (const mapping of model.mappings) {
    const nets = mapping.allowedSources.flatMap(storableNets)
    for (const e of mapping.endpoints) {
      const endpoint = endpointEntry(e.address, e.protocol, e.port)
      endpoints.push(endpoint)
      if (e.group?.members.length === 0) unserved.push(endpoint)
      for (const net of nets) allow.push(allowEntry(endpoint, net))
    }
  }
  const sets = [set(ALLOW_SET, ALLOW_SET_TYPE, allow), set(ENDPOINTS_SET, ENDPOINTS_SET_TYPE, endpoints)]
  if (direct) sets.push(set(UNSERVED_SET, ENDPOINTS_SET_TYPE, unserved))
  for (const egress of model.egress) sets.push(egressSet(egress))
  sets.push(...egressInterfaceSets(model, egressByInterface))
  return sortSets(sets)
}

/** The set of the pods leaving with one egress address. */
export function egressSet(egress: NatEgress): IpsetState {
  return set(egressSetName(egress.address), EGRESS_SET_TYPE, [...egress.podIPs])
}

/** The set of each external interface's egress pods. */
export function egressInterfaceSets(model: NatModel, egressByInterface: ReadonlyMap<string, ReadonlyMap<Ipv4, unknown>>): IpsetState[] {
  const indexes = new Map(model.interfaces.map((iface) => [iface.name, iface.index]))
  return [...egressByInterface].map(([iface, pods]) => interfaceSet(indexes, iface, [...pods.keys()]))
}

/** The set of one interface's egress pods (`indexes`: interface indexes by name), which takes over `pods`. */
export function interfaceSet(indexes: ReadonlyMap<string, number>, iface: string, pods: string[]): IpsetState {
  const index = indexes.get(iface)
  if (index === undefined) throw new Error(`egress uses interface ${JSON.stringify(iface)}, which is not an external interface`)
  return set(egressInterfaceSetName(index), EGRESS_SET_TYPE, pods)
}

/** Sets in the order states keep them: by name. */
export function sortSets(sets: IpsetState[]): IpsetState[] {
  return sets.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
}
