/**
 * Dropping conntrack entries that still point at a target that is gone.
 *
 * The kernel translates only a connection's first packet; every later packet follows the
 * conntrack entry. A UDP client that keeps sending therefore keeps talking to a vanished
 * target forever, and a TCP client hangs until it gives up. Deleting the entry makes the
 * next packet go through the NAT rules again.
 *
 * Only entries smartnat's own DNAT made are deleted: the host's own connections, and those another
 * DNAT (Docker, kube-proxy's NodePorts) translated, are none of its business.
 *
 * In `service` mode this host DNATs to the Service VIP, so its entries have the VIP:servicePort
 * as reply source; which pod answers is decided later, on a cluster node. So here the entries to
 * drop are those of a mapped external address:port whose reply source is no longer the Mapping's
 * current target (VIP or servicePort changed, or the Mapping is gone): `deleteStaleNatFlows`.
 * Where the translation goes on to pods on this host (kube-proxy in IPVS mode here), entries of a
 * mapped address:port whose reply source is a pod that disappeared are dropped: `deleteFlowsFromEndpoints`.
 */
import type {Protocol} from '../mapping/types.js'
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import {hex} from '../net/marks.js'
import type {Runner} from './runner.js'

/** Which entries `conntrack -D` deletes; every field given must match. Ports need a protocol. */
export interface ConntrackFilter {
  protocol?: Protocol
  origDst?: Ipv4
  origDstPort?: number
  replySrc?: Ipv4
  replySrcPort?: number
  /** The connection mark's bits under `mask` equal `value`. */
  mark?: {value: number; mask: number}
}

/** One direction of a conntrack entry. */
export interface ConntrackTuple {
  src: Ipv4
  dst: Ipv4
  sport?: number
  dport?: number
}

export interface ConntrackFlow {
  protocol: string
  original: ConntrackTuple
  reply: ConntrackTuple
  /** The connection mark (0 when the kernel prints none). */
  mark: number
}

/** A mapped external address:port, as clients address it. */
export interface NatFlowEndpoint {
  address: Ipv4
  protocol: Protocol
  port: number
}

/** An address:port smartnat translates to. */
export interface NatTarget {
  ip: Ipv4
  port: number
}

/**
 * A mapped external endpoint whose rule changed: the target its entries may keep (none: none may
 * stay), and where smartnat's rule sent its connections before.
 */
export interface NatFlowTarget extends NatFlowEndpoint {
  target?: NatTarget
  formerTargets: NatTarget[]
  /**
   * Only entries answering from a former target go. A mode-direct endpoint's own connections answer
   * from its pods, and those stay until they end unless the pod is gone (deleteFlowsFromUnlisted).
   */
  formerOnly?: boolean
}

/** A mapped external endpoint of mode direct, with the addresses its connections may keep answering from. */
export interface DirectFlowEndpoint extends NatFlowEndpoint {
  /** The pods any EndpointSlice of the Service still lists, ready or not, and its ClusterIP (connections made in mode service). */
  keep: ReadonlySet<Ipv4>
}

/**
 * The connection mark smartnat's DNAT gives the connections it admits: some bit of `any` set (the
 * interface the connection came in on), every bit of `none` clear (not an egress connection).
 */
export interface AdmittedMark {
  any: number
  none: number
}

// conntrack exits with 1 when no entry matched the filter.
const NOTHING_MATCHED = 1

/** Deletes the entries matching `filter` and returns how many the kernel removed. */
export async function deleteConntrackFlows(runner: Runner, filter: ConntrackFilter): Promise<number> {
  const {stderr} = await runner.run('conntrack', ['-D', ...filterArgs(filter)], {okExitCodes: [NOTHING_MATCHED]})
  const deleted = /(\d+) flow entr(?:y|ies) (?:has|have) been deleted/.exec(stderr)
  return deleted ? Number(deleted[1]) : 0
}

/** Lists the entries matching `filter`. */
export async function listConntrackFlows(runner: Runner, filter: ConntrackFilter): Promise<ConntrackFlow[]> {
  const {stdout} = await runner.run('conntrack', ['-L', ...filterArgs(filter)])
  return parseConntrackList(stdout)
}

/**
 * Deletes entries of each external address:port that smartnat translated to anything but its
 * current target. An entry is smartnat's when it answers from a target smartnat's rule named, or
 * carries the `admitted` mark (replies from a pod, where this host translates further); entries
 * another DNAT made for the same address:port stay. One listing per address, one deletion per
 * (endpoint, reply source) found.
 */
export async function deleteStaleNatFlows(runner: Runner, endpoints: NatFlowTarget[], admitted: AdmittedMark): Promise<number> {
  const byAddress = new Map<Ipv4, NatFlowTarget[]>()
  for (const endpoint of endpoints) {
    const targets = byAddress.get(endpoint.address) ?? []
    targets.push(endpoint)
    byAddress.set(endpoint.address, targets)
  }

  const markMask = admitted.any | admitted.none
  let deleted = 0
  for (const [address, targets] of byAddress) {
    const stale = new Map<string, ConntrackFilter>()
    for (const flow of await listConntrackFlows(runner, {origDst: address})) {
      const endpoint = targets.find((t) => t.protocol === flow.protocol && t.port === flow.original.dport)
      if (!endpoint || !isTranslated(flow)) continue
      const {reply} = flow
      if (endpoint.target && answersFrom(flow, endpoint.target)) continue
      const former = endpoint.formerTargets.some((t) => answersFrom(flow, t))
      if (!former && (endpoint.formerOnly || !isAdmitted(flow.mark, admitted))) continue
      const filter: ConntrackFilter = {
        protocol: endpoint.protocol,
        origDst: address,
        origDstPort: endpoint.port,
        replySrc: reply.src,
        replySrcPort: reply.sport,
        // Selected by the mark alone, the deletion must not reach another DNAT's entry to the same reply source.
        ...(former ? {} : {mark: {value: (flow.mark & markMask) >>> 0, mask: markMask}}),
      }
      stale.set(filterArgs(filter).join(' '), filter)
    }
    for (const filter of stale.values()) deleted += await deleteConntrackFlows(runner, filter)
  }
  return deleted
}

/**
 * Deletes the entries of smartnat's external `endpoints` whose replies come from one of `pods` (pods
 * that went away). An entry to any other destination (the host's own connection to a pod, one
 * through another DNAT) stays. One listing per pod, one deletion per (endpoint, pod) found.
 */
export async function deleteFlowsFromEndpoints(runner: Runner, pods: Ipv4[], endpoints: () => readonly NatFlowEndpoint[]): Promise<number> {
  // Made when a connection is found, not before: most pods that leave have none left.
  let mapped: Set<string> | undefined
  let deleted = 0
  for (const pod of pods) {
    const filters = new Map<string, ConntrackFilter>()
    for (const flow of await listConntrackFlows(runner, {replySrc: pod})) {
      const {protocol, original} = flow
      if (protocol !== 'tcp' && protocol !== 'udp') continue
      mapped ??= new Set(endpoints().map((e) => endpointKey(e.address, e.protocol, e.port)))
      if (original.dport === undefined || !mapped.has(endpointKey(original.dst, protocol, original.dport))) continue
      const filter: ConntrackFilter = {protocol, origDst: original.dst, origDstPort: original.dport, replySrc: pod}
      filters.set(filterArgs(filter).join(' '), filter)
    }
    for (const filter of filters.values()) deleted += await deleteConntrackFlows(runner, filter)
  }
  return deleted
}

/**
 * Deletes the entries of mode-direct `endpoints` that answer from an address they may not keep: a pod
 * gone from every EndpointSlice of the Service. One listing per mark in `marks` (the connections
 * smartnat admitted on one external interface), one deletion per (endpoint, reply source) found.
 */
export async function deleteFlowsFromUnlisted(runner: Runner, endpoints: DirectFlowEndpoint[], marks: {value: number; mask: number}[]): Promise<number> {
  const byKey = new Map(endpoints.map((e) => [endpointKey(e.address, e.protocol, e.port), e]))
  let deleted = 0
  for (const mark of marks) {
    const filters = new Map<string, ConntrackFilter>()
    for (const flow of await listConntrackFlows(runner, {mark})) {
      const {protocol, original, reply} = flow
      if ((protocol !== 'tcp' && protocol !== 'udp') || original.dport === undefined || !isTranslated(flow)) continue
      const endpoint = byKey.get(endpointKey(original.dst, protocol, original.dport))
      if (!endpoint || endpoint.keep.has(reply.src)) continue
      const filter: ConntrackFilter = {protocol, origDst: original.dst, origDstPort: original.dport, replySrc: reply.src, mark}
      filters.set(filterArgs(filter).join(' '), filter)
    }
    for (const filter of filters.values()) deleted += await deleteConntrackFlows(runner, filter)
  }
  return deleted
}

/** Parses `conntrack -L` output: the first src/dst/sport/dport are the original direction, the second the reply. */
export function parseConntrackList(text: string): ConntrackFlow[] {
  const flows: ConntrackFlow[] = []
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/)
    const protocol = words[0]
    if (!protocol || words.length < 2) continue
    const tuples: Partial<Record<keyof ConntrackTuple, string>>[] = [{}, {}]
    let mark = 0
    for (const word of words) {
      if (word.startsWith('mark=')) mark = Number(word.slice(5)) || 0
      const match = /^(src|dst|sport|dport)=(.*)$/.exec(word)
      if (!match) continue
      const field = match[1] as keyof ConntrackTuple
      const tuple = tuples[0]![field] === undefined ? tuples[0]! : tuples[1]!
      tuple[field] = match[2]
    }
    const original = toTuple(tuples[0]!)
    const reply = toTuple(tuples[1]!)
    if (original && reply) flows.push({protocol, original, reply, mark})
  }
  return flows
}

function toTuple(fields: Partial<Record<keyof ConntrackTuple, string>>): ConntrackTuple | undefined {
  const src = parseIpv4(fields.src)
  const dst = parseIpv4(fields.dst)
  if (!src || !dst) return undefined
  return {
    src,
    dst,
    ...(fields.sport === undefined ? {} : {sport: Number(fields.sport)}),
    ...(fields.dport === undefined ? {} : {dport: Number(fields.dport)}),
  }
}

// An untranslated entry answers from the very address and port the client asked for.
function isTranslated(flow: ConntrackFlow): boolean {
  return flow.reply.src !== flow.original.dst || flow.reply.sport !== flow.original.dport
}

function answersFrom(flow: ConntrackFlow, target: NatTarget): boolean {
  return flow.reply.src === target.ip && flow.reply.sport === target.port
}

function isAdmitted(mark: number, admitted: AdmittedMark): boolean {
  return (mark & admitted.any) !== 0 && (mark & admitted.none) === 0
}

function endpointKey(address: Ipv4, protocol: Protocol, port: number): string {
  return `${address} ${protocol} ${port}`
}

function filterArgs(filter: ConntrackFilter): string[] {
  if ((filter.origDstPort !== undefined || filter.replySrcPort !== undefined) && !filter.protocol) {
    throw new Error('conntrack filter: a port needs a protocol')
  }
  const args: string[] = []
  if (filter.protocol) args.push('-p', filter.protocol)
  if (filter.origDst) args.push('--orig-dst', filter.origDst)
  if (filter.origDstPort !== undefined) args.push('--orig-port-dst', String(filter.origDstPort))
  if (filter.replySrc) args.push('--reply-src', filter.replySrc)
  if (filter.replySrcPort !== undefined) args.push('--reply-port-src', String(filter.replySrcPort))
  if (filter.mark) args.push('--mark', `${hex(filter.mark.value)}/${hex(filter.mark.mask)}`)
  return args
}
