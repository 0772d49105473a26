/**
 * Renders a NatModel into the nftables backend's desired state (docs/kernel-layout-nftables.md):
 * one table whose hash sets and maps dispatch every packet with a constant number of lookups,
 * whatever the number of Mappings, with the same marks, ip rules and routes as the iptables backend.
 */
import {checkInterfaceName} from '../../net/interface-name.js'
import {cidrContains, cidrParts, intToIpv4, prefixMask, type Cidr, type Ipv4} from '../../net/ipv4.js'
import type {NatEgress, NatEndpoint, NatMapping, NatModel, ServiceEndpoint} from '../../plan/model.js'
import {renderIpRules, renderRoutes} from '../../routing/render.js'
import {EGRESS_MARK, INTERFACE_MASK, MASQUERADE_MARK, interfaceMark} from '../../net/marks.js'
import {compareText} from '../../plan/order.js'
import {renderDirect, type DirectTable, type OwnedDirectEndpoint} from './direct.js'
import {egressRun, printRun, type EgressRun} from './egress-runs.js'
import {
  DIRECT_ENDPOINTS_SET,
  DIRECT_MAP,
  EGRESS_SNAT_MAP,
  ENDPOINTS_MAP,
  FORWARD_CHAIN,
  INPUT_CHAIN,
  MANGLE_OUTPUT_CHAIN,
  MANGLE_PREROUTING_CHAIN,
  MAX_COMMENT,
  NAT_ALLOWED_CHAIN,
  NAT_POSTROUTING_CHAIN,
  NAT_PREROUTING_CHAIN,
  PRIORITY,
  UNSERVED_SET,
  allowedSetName,
  egressSetName,
  restoreChainName,
} from './names.js'
import {printElement, sortedSet, type ElementTypes} from './syntax.js'
import type {NftChain, NftElement, NftRule, NftSet, NftState, NftStatement, NftTable, Selector} from './types.js'
import {checkAddress, checkedEndpoints} from '../model-checks.js'

const ENDPOINT_KEY: Selector[] = ['ip daddr', 'meta l4proto', 'th dport']
export const ENDPOINT_TYPE = ['ipv4_addr', 'inet_proto', 'inet_service']

/** The kernel state the model asks for: the table, ip rules and routes. */
export function renderNftables(model: NatModel): NftState {
  for (const iface of model.interfaces) checkInterfaceName(iface.name)
  return {table: renderTable(model), ipRules: renderIpRules(model), routes: renderRoutes(model)}
}

function renderTable(model: NatModel): NftTable {
  const marks = interfaceMarks(model)
  const endpoints = collectEndpoints(model.mappings)
  const egress = egressRuns(model, marks)
  const direct = directEndpoints(endpoints)

  const allowed = allowedByPrefixLength(endpoints)
  const sets: NftSet[] = [sortedSet(ENDPOINTS_MAP, ENDPOINT_TYPE, serviceEndpoints(endpoints).map(endpointElement), ENDPOINTS_MAP_DATA)]
  for (const [length, elements] of allowed) sets.push(sortedSet(allowedSetName(length), allowedKeyType(length), elements))
  return assembleTable(model, marks, {sets, lengths: [...allowed.keys()], egress: egressSets(egress), ...(direct ? {direct} : {})})
}

/** The value types of the endpoints map: target address and port. */
export const ENDPOINTS_MAP_DATA = ['ipv4_addr', 'inet_service']

const ENDPOINTS_MAP_TYPES: ElementTypes = {keyType: ENDPOINT_TYPE, dataType: ENDPOINTS_MAP_DATA}
/** How the elements of an egress set and of the SNAT map are printed. */
export const EGRESS_SET_TYPES: ElementTypes = {keyType: ['ipv4_addr']}
export const EGRESS_SNAT_TYPES: ElementTypes = {keyType: ['ifname', 'ipv4_addr'], dataType: ['ipv4_addr']}

/** The key types of the allow-list set of one prefix length. */
export function allowedKeyType(length: number): string[] {
  return length === 0 ? ENDPOINT_TYPE : [...ENDPOINT_TYPE, 'ipv4_addr']
}

/** Each external interface's index and connection mark, by name. */
export function interfaceMarks(model: NatModel): Marks {
  return new Map(model.interfaces.map((iface) => [iface.name, {index: iface.index, mark: interfaceMark(iface.index)}]))
}

/** The sets of egress SNAT (`--snat`), and the interfaces whose pods egress. */
export interface EgressSets {
  sets: NftSet[]
  indexes: number[]
}

/** What the SNAT map element of a pod prints besides the pod: the entry's interface, address and comment. */
export interface SnatLook {
  interface: string
  address: Ipv4
  comment: string
}

/** The records of the egress set of each interface index with pods (by index) and of the SNAT map. */
export interface EgressRuns {
  byIndex: Map<number, EgressRun<string>>
  snat: EgressRun<SnatLook>
}

/** The element of a pod in the SNAT map, from its record. */
export const printEgressSnat = (pod: Ipv4, look: SnatLook): NftElement => egressSnatElement(look.interface, pod, look.address, look.comment)

/** The egress sets of what egressRuns found, their elements printed. */
export function egressSets(runs: EgressRuns): EgressSets {
  const sets = [...runs.byIndex].map(([index, run]) => printedSet(egressSetName(index), EGRESS_SET_TYPES, printRun(run, egressPodElement)))
  if (runs.snat.chunks.length > 0) sets.push(printedSet(EGRESS_SNAT_MAP, EGRESS_SNAT_TYPES, printRun(runs.snat, printEgressSnat)))
  return {sets, indexes: [...runs.byIndex.keys()]}
}

/** A set of these types and elements, already in their order (shaped as sortedSet makes them). */
function printedSet(name: string, types: ElementTypes, elements: NftElement[]): NftSet {
  const set: NftSet = {name, keyType: types.keyType, flags: [], elements}
  if (types.dataType) set.dataType = types.dataType
  return set
}

/**
 * The table from its parts: the sets of the Mappings' endpoints (`sets`, with an allow-list per
 * prefix length in `lengths`, longest first), of egress, of mode direct, and the chains all lead to.
 */
export function assembleTable(model: NatModel, marks: Marks, parts: {sets: NftSet[]; lengths: number[]; egress: EgressSets; direct?: DirectTable}): NftTable {
  const {egress, direct} = parts
  const sets = [...parts.sets, ...egress.sets]
  const snat = egress.sets.some((set) => set.name === EGRESS_SNAT_MAP)
  if (direct) sets.push(...direct.sets)
  sets.sort((a, b) => compareText(a.name, b.name))

  const indexes = [...marks.values()].map((m) => m.index).sort((a, b) => a - b)
  return {
    sets,
    chains: [
      manglePrerouting(model, indexes, egress.indexes),
      ...(direct ? [mangleOutput(model, indexes)] : []),
      natPrerouting(parts.lengths),
      natPostrouting(model, snat),
      input(direct !== undefined, model.masqueradeTo),
      {
        name: FORWARD_CHAIN,
        base: {type: 'filter', hook: 'forward', priority: PRIORITY.filter},
        // Accepting here does not overrule a DROP policy of another table's forward chain (see the doc).
        rules: [{matches: [{kind: 'mark', of: 'ct', mask: INTERFACE_MASK, value: 0, negate: true}], statement: {kind: 'accept'}}],
      },
      natAllowed(model, marks, direct !== undefined),
      ...indexes.map(restoreChain),
      ...(direct?.pickChains ?? []),
      ...(direct?.chains ?? []),
    ],
  }
}

/**
 * Traffic to a mapped endpoint that was not DNATed still has the host's address as destination and
 * ends here: its source is not allowed, whatever listens on the host. Or, in mode direct, its source
 * is allowed (the connection carries its interface's mark) but its group has no member: refused, as
 * kube-proxy refuses a Service without endpoints. REJECT is not possible in a nat chain.
 */
function input(direct: boolean, clusterAddress: Ipv4 | undefined): NftChain {
  const lookup = (set: string) => ({kind: 'lookup', key: ENDPOINT_KEY, set, negate: false}) as const
  const rules: NftRule[] = []
  if (direct) {
    const admitted = {kind: 'mark', of: 'ct', mask: INTERFACE_MASK, value: 0, negate: true} as const
    rules.push(
      {matches: [admitted, lookup(UNSERVED_SET)], statement: {kind: 'reject', with: 'tcp reset'}},
      {matches: [admitted, lookup(UNSERVED_SET), {kind: 'l4proto', protocol: 'udp'}], statement: {kind: 'reject', with: 'icmp port-unreachable'}},
    )
  }
  rules.push({matches: [lookup(ENDPOINTS_MAP)], statement: {kind: 'drop'}})
  if (direct) rules.push({matches: [lookup(DIRECT_ENDPOINTS_SET)], statement: {kind: 'drop'}})
  // An HA pair's floating cluster-side address: see the iptables backend's renderFilter.
  if (clusterAddress !== undefined) rules.push({matches: [{kind: 'daddr', ip: checkAddress(clusterAddress)}], statement: {kind: 'drop'}})
  return {name: INPUT_CHAIN, base: {type: 'filter', hook: 'input', priority: PRIORITY.filter}, rules}
}

export type Marks = Map<string, {index: number; mark: number}>

function manglePrerouting(model: NatModel, indexes: number[], egressIndexes: number[]): NftChain {
  const rules: NftRule[] = egressIndexes.map((index) => {
    const mark = EGRESS_MARK | interfaceMark(index)
    return {
      matches: [
        {kind: 'ct state', state: 'new'},
        {kind: 'lookup', key: ['ip saddr'], set: egressSetName(index), negate: false},
      ],
      statement: setMark('ct', INTERFACE_MASK | EGRESS_MARK, mark),
    }
  })
  // Replies of inbound connections and every packet of egress connections carry the interface bits
  // as packet mark before the routing decision, so `ip rule fwmark` picks the interface's table.
  if (model.interfaces.length > 0) rules.push(restoreMark('reply', indexes), restoreMark('original', indexes))
  return {name: MANGLE_PREROUTING_CHAIN, base: {type: 'filter', hook: 'prerouting', priority: PRIORITY.mangle}, rules}
}

/**
 * The TCP reset or ICMP error refusing a connection to an unserved endpoint is the host's own
 * packet, routed with no mark: by the main table it would miss a client that only its interface's
 * table reaches. The kernel attaches both to the refused connection, as related, in its reply
 * direction, so they get its interface bits as replies do in mangle_prerouting, and a `route`
 * chain routes a packet again when its mark changed.
 */
function mangleOutput(model: NatModel, indexes: number[]): NftChain {
  const rules = model.interfaces.length > 0 ? [restoreMark('reply', indexes)] : []
  return {name: MANGLE_OUTPUT_CHAIN, base: {type: 'route', hook: 'output', priority: PRIORITY.mangle}, rules}
}

/**
 * The interface bits of the connection mark as packet mark, for replies of inbound connections
 * (egress bit clear) or for the original direction of egress ones (egress bit set). One
 * verdict-map lookup per packet; a chain per interface keeps the other packet mark bits.
 */
function restoreMark(direction: 'reply' | 'original', indexes: number[]): NftRule {
  const egress = direction === 'original' ? EGRESS_MARK : 0
  return {
    matches: [{kind: 'ct direction', direction}],
    statement: {
      kind: 'vmap',
      of: 'ct',
      mask: INTERFACE_MASK | EGRESS_MARK,
      entries: indexes.map((index) => ({value: (egress | interfaceMark(index)) >>> 0, chain: restoreChainName(index)})),
    },
  }
}

/**
 * One exact-match lookup per prefix length present among the allowed sources, longest first: hash
 * sets cost the same however many elements they hold, where one interval set of every
 * (endpoint, prefix) would be searched in time that grows with its size.
 */
function natPrerouting(prefixLengths: number[]): NftChain {
  const rules: NftRule[] = prefixLengths.map((length) => ({
    matches: [{kind: 'lookup', key: length === 0 ? ENDPOINT_KEY : [...ENDPOINT_KEY, sourceSelector(length)], set: allowedSetName(length), negate: false}],
    statement: {kind: 'goto', chain: NAT_ALLOWED_CHAIN},
  }))
  return {name: NAT_PREROUTING_CHAIN, base: {type: 'nat', hook: 'prerouting', priority: PRIORITY.dstnat}, rules}
}

/** `ip saddr` with the host bits of a prefix of this length cleared; a /32 needs no mask. */
function sourceSelector(length: number): Selector {
  return length === 32 ? 'ip saddr' : `ip saddr & ${intToIpv4(prefixMask(length))}`
}

/** What an allowed connection meets: the masquerade mark, its interface's connection mark, the DNAT. */
function natAllowed(model: NatModel, marks: Marks, direct: boolean): NftChain {
  const rules: NftRule[] = []
  if (model.masquerade) rules.push({matches: [], statement: setMark('meta', MASQUERADE_MARK, MASQUERADE_MARK)})
  // Every external interface marks its connections, also the one without a table of its own: the
  // mark is what FORWARD accepts, and with no `ip rule` for it replies simply follow the main table.
  for (const iface of model.interfaces) {
    rules.push({matches: [{kind: 'iifname', name: iface.name}], statement: setMark('ct', INTERFACE_MASK | EGRESS_MARK, marks.get(iface.name)!.mark)})
  }
  // A direct endpoint goes to its group's chain; any other finds no element and goes on to the DNAT.
  if (direct) rules.push({matches: [], statement: {kind: 'dispatch', key: ENDPOINT_KEY, map: DIRECT_MAP}})
  rules.push({matches: [], statement: {kind: 'dnat', key: ENDPOINT_KEY, map: ENDPOINTS_MAP}})
  return {name: NAT_ALLOWED_CHAIN, rules}
}

function natPostrouting(model: NatModel, egress: boolean): NftChain {
  const rules: NftRule[] = []
  if (model.masquerade) {
    // An HA pair's floating cluster-side address, not the host's own: pods' replies then follow the active host.
    const statement: NftStatement = model.masqueradeTo === undefined ? {kind: 'masquerade'} : {kind: 'snat to', ip: checkAddress(model.masqueradeTo)}
    rules.push({matches: [{kind: 'mark', of: 'meta', mask: MASQUERADE_MARK, value: MASQUERADE_MARK, negate: false}], statement})
  }
  if (egress) {
    rules.push({
      matches: [{kind: 'mark', of: 'ct', mask: EGRESS_MARK, value: EGRESS_MARK, negate: false}],
      statement: {kind: 'snat', key: ['oifname', 'ip saddr'], map: EGRESS_SNAT_MAP},
    })
  }
  return {name: NAT_POSTROUTING_CHAIN, base: {type: 'nat', hook: 'postrouting', priority: PRIORITY.srcnat}, rules}
}

function restoreChain(index: number): NftChain {
  return {name: restoreChainName(index), rules: [{matches: [], statement: setMark('meta', INTERFACE_MASK, interfaceMark(index))}]}
}

/**
 * `MARK set MARK & AND | value`: clears `clear`, sets `value` (a subset of it), keeps every other bit.
 * nft keeps the set bits in AND too, so that is how it is written here, to read back alike.
 */
function setMark(of: 'meta' | 'ct', clear: number, value: number): NftStatement {
  return {kind: 'set mark', of, and: (~clear | value) >>> 0, or: value >>> 0}
}

export interface OwnedEndpoint {
  mapping: NatMapping
  endpoint: NatEndpoint
  sources: Cidr[]
}

/** Endpoints of all Mappings, each claimed once, with the Mapping's allow-list reduced to disjoint prefixes. */
function collectEndpoints(mappings: NatMapping[]): OwnedEndpoint[] {
  const sourcesOf = new Map<NatMapping, Cidr[]>()
  return checkedEndpoints(mappings, 'element comment').map(({mapping, endpoint}) => {
    const sources = sourcesOf.get(mapping) ?? disjointSources(mapping.allowedSources)
    sourcesOf.set(mapping, sources)
    return {mapping, endpoint, sources}
  })
}

/** A prefix nested in another of the same list admits no one more: keep the outermost, once each. */
export function disjointSources(sources: Cidr[]): Cidr[] {
  const unique = [...new Set(sources)]
  return unique.filter((inner) => !unique.some((outer) => outer !== inner && covers(outer, inner)))
}

function covers(outer: Cidr, inner: Cidr): boolean {
  const o = cidrParts(outer)
  const i = cidrParts(inner)
  return o.length <= i.length && cidrContains(outer, i.network)
}

export function endpointComment({mapping, endpoint: e}: OwnedEndpoint): string {
  return cut(`${mapping.namespace}/${mapping.name}`, ` ${e.protocol}/${e.port}`)
}

function serviceEndpoints(endpoints: OwnedEndpoint[]): (OwnedEndpoint & {endpoint: ServiceEndpoint})[] {
  return endpoints.filter((owned): owned is OwnedEndpoint & {endpoint: ServiceEndpoint} => owned.endpoint.group === undefined)
}

/** The direct-mode sets and chains; undefined when no endpoint is direct, so a table of service Mappings stays as it was. */
function directEndpoints(endpoints: OwnedEndpoint[]): DirectTable | undefined {
  const direct: OwnedDirectEndpoint[] = []
  for (const owned of endpoints) {
    const {mapping, endpoint} = owned
    if (endpoint.group !== undefined) direct.push({mapping, endpoint, comment: endpointComment(owned)})
  }
  return direct.length === 0 ? undefined : renderDirect(direct)
}

export function endpointElement(owned: OwnedEndpoint & {endpoint: ServiceEndpoint}): NftElement {
  const e = owned.endpoint
  return printElement(ENDPOINTS_MAP_TYPES, {key: [e.address, e.protocol, String(e.port)], value: [e.targetIP, String(e.targetPort)], comment: endpointComment(owned)})
}

/** The allow-list element of an endpoint and one of its sources' networks (none for a /0), in the set of that prefix length. */
export function allowedElement(e: NatEndpoint, length: number, network: Ipv4, comment: string): NftElement {
  const key = [e.address, e.protocol, String(e.port)]
  if (length > 0) key.push(network)
  return printElement({keyType: allowedKeyType(length)}, {key, comment})
}

/** A pod's element in the egress set of its interface. */
export function egressPodElement(pod: Ipv4, comment: string): NftElement {
  return printElement(EGRESS_SET_TYPES, {key: [pod], comment})
}

/** A pod's element in the SNAT map: the address its connections leave an interface with. */
export function egressSnatElement(iface: string, pod: Ipv4, address: string, comment: string): NftElement {
  return printElement(EGRESS_SNAT_TYPES, {key: [iface, pod], value: [address], comment})
}

/** Elements of the allow-list sets by prefix length, longest first; each keyed by the prefix's network address. */
function allowedByPrefixLength(endpoints: OwnedEndpoint[]): Map<number, NftElement[]> {
  const byLength = new Map<number, NftElement[]>()
  for (const {mapping, endpoint: e, sources} of endpoints) {
    const comment = cut(`${mapping.namespace}/${mapping.name}`, '')
    for (const source of sources) {
      const {network, length} = cidrParts(source)
      const elements = byLength.get(length) ?? []
      elements.push(allowedElement(e, length, network, comment))
      byLength.set(length, elements)
    }
  }
  return new Map([...byLength].sort(([a], [b]) => b - a))
}

/** A comment within nft's limit: the name is cut, the suffix kept. */
export function cut(name: string, suffix: string): string {
  return `${name.slice(0, MAX_COMMENT - suffix.length)}${suffix}`
}

const egressComments = new WeakMap<NatEgress, string>()

/** The comment of an egress entry's elements: the Mappings that contributed. */
export function egressComment(egress: NatEgress): string {
  let comment = egressComments.get(egress)
  if (comment === undefined) egressComments.set(egress, (comment = cut(egress.mappings.join(' '), '')))
  return comment
}

const snatLooks = new WeakMap<NatEgress, SnatLook>()

/** What the SNAT map elements of an egress entry's pods print besides the pod, one object per entry. */
export function snatLook(egress: NatEgress): SnatLook {
  let look = snatLooks.get(egress)
  if (look === undefined) snatLooks.set(egress, (look = {interface: egress.interface, address: egress.address, comment: egressComment(egress)}))
  return look
}

/** The key of a pod's SNAT map element as nft prints it (interface names are checked: no quote inside), the order of the map's elements. */
export function snatKey(iface: string, pod: Ipv4): string {
  return `"${iface}" . ${pod}`
}

/**
 * Which interface each egress pod's connections belong to, and the address they leave with per
 * (out interface, pod). Mirrors the iptables rules' order: the last egress naming a pod sets its
 * connection mark, the first one per out interface picks its source address.
 */
export function egressRuns(model: NatModel, marks: Marks): EgressRuns {
  const owner = new Map<Ipv4, NatEgress>()
  const snat = new Map<string, {pod: Ipv4; look: SnatLook}>()
  for (const egress of model.egress) {
    if (!marks.has(egress.interface)) throw new Error(`egress uses interface ${JSON.stringify(egress.interface)}, which is not an external interface`)
    checkAddress(egress.address)
    const look = snatLook(egress)
    for (const pod of egress.podIPs) {
      checkAddress(pod)
      owner.set(pod, egress)
      const key = snatKey(egress.interface, pod)
      if (!snat.has(key)) snat.set(key, {pod, look})
    }
  }
  const pods = new Map<number, Ipv4[]>()
  for (const [pod, egress] of owner) {
    const index = marks.get(egress.interface)!.index
    const group = pods.get(index)
    if (group) group.push(pod)
    else pods.set(index, [pod])
  }
  const byIndex = new Map<number, EgressRun<string>>()
  for (const index of [...pods.keys()].sort((a, b) => a - b)) {
    // By the printed key, the pod itself: the order nft lists elements in, read back.
    const sorted = pods.get(index)!.sort(compareText)
    byIndex.set(index, egressRun(sorted, sorted.map((pod) => egressComment(owner.get(pod)!))))
  }
  const records = [...snat].sort(([a], [b]) => compareText(a, b))
  return {byIndex, snat: egressRun(records.map(([, {pod}]) => pod), records.map(([, {look}]) => look))}
}
