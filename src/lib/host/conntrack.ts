/**
 * Dropping conntrack entries that still point at a target that is gone.
 *
 * The kernel translates only a connection's first packet; every later packet follows the
 * conntrack entry. A UDP client that keeps sending therefore keeps talking to a vanished
 * target forever, and a TCP client hangs until it gives up. Deleting the entry makes the
 * next packet go through the NAT rules again.
 *
 * In `service` mode this host DNATs to the Service VIP, so its entries have the VIP:servicePort
 * as reply source; which pod answers is decided later, on a cluster node. So here the entries to
 * drop are those of a mapped external address:port whose reply source is no longer the Mapping's
 * current target (VIP or servicePort changed, or the Mapping is gone): `deleteStaleNatFlows`.
 * Where the translation goes straight to pods (`direct` mode, or a node running kube-proxy),
 * entries whose reply source is a pod that disappeared are dropped: `deleteFlowsFromEndpoints`.
 */
import type {Protocol} from '../mapping/types.js'
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import type {NatEndpoint} from '../plan/model.js'
import type {Runner} from './runner.js'

/** Which entries `conntrack -D` deletes; every field given must match. Ports need a protocol. */
export interface ConntrackFilter {
  protocol?: Protocol
  origDst?: Ipv4
  origDstPort?: number
  replySrc?: Ipv4
  replySrcPort?: number
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
}

/** A mapped external endpoint and the target its entries may keep; no target means none may stay. */
export interface NatFlowTarget {
  address: Ipv4
  protocol: Protocol
  port: number
  target?: {ip: Ipv4; port: number}
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

/** Deletes entries of each external address:port that were translated to anything but its current target. */
export async function deleteStaleNatFlows(runner: Runner, endpoints: NatFlowTarget[]): Promise<number> {
  const byAddress = new Map<Ipv4, NatFlowTarget[]>()
  for (const endpoint of endpoints) {
    const targets = byAddress.get(endpoint.address) ?? []
    targets.push(endpoint)
    byAddress.set(endpoint.address, targets)
  }

  let deleted = 0
  for (const [address, targets] of byAddress) {
    const stale = new Map<string, ConntrackFilter>()
    for (const flow of await listConntrackFlows(runner, {origDst: address})) {
      const endpoint = targets.find((t) => t.protocol === flow.protocol && t.port === flow.original.dport)
      if (!endpoint || !isTranslated(flow)) continue
      const {reply} = flow
      if (endpoint.target && reply.src === endpoint.target.ip && reply.sport === endpoint.target.port) continue
      const filter: ConntrackFilter = {
        protocol: endpoint.protocol,
        origDst: address,
        origDstPort: endpoint.port,
        replySrc: reply.src,
        replySrcPort: reply.sport,
      }
      stale.set(filterArgs(filter).join(' '), filter)
    }
    for (const filter of stale.values()) deleted += await deleteConntrackFlows(runner, filter)
  }
  return deleted
}

/** Deletes every entry whose replies come from one of `endpoints` (pods that went away). */
export async function deleteFlowsFromEndpoints(runner: Runner, endpoints: Ipv4[]): Promise<number> {
  let deleted = 0
  for (const replySrc of endpoints) deleted += await deleteConntrackFlows(runner, {replySrc})
  return deleted
}

/** What `deleteStaleNatFlows` should check after an apply: every desired endpoint, and every previous one now gone. */
export function natFlowTargets(desired: NatEndpoint[], previous: NatEndpoint[]): NatFlowTarget[] {
  const key = (e: NatEndpoint) => `${e.address} ${e.protocol} ${e.port}`
  const desiredKeys = new Set(desired.map(key))
  const toTarget = (e: NatEndpoint): NatFlowTarget => ({
    address: e.address,
    protocol: e.protocol,
    port: e.port,
    target: {ip: e.targetIP, port: e.targetPort},
  })
  const gone = previous
    .filter((e) => !desiredKeys.has(key(e)))
    .map((e): NatFlowTarget => ({address: e.address, protocol: e.protocol, port: e.port}))
  return [...desired.map(toTarget), ...gone]
}

/** Parses `conntrack -L` output: the first src/dst/sport/dport are the original direction, the second the reply. */
export function parseConntrackList(text: string): ConntrackFlow[] {
  const flows: ConntrackFlow[] = []
  for (const line of text.split('\n')) {
    const words = line.trim().split(/\s+/)
    const protocol = words[0]
    if (!protocol || words.length < 2) continue
    const tuples: Partial<Record<keyof ConntrackTuple, string>>[] = [{}, {}]
    for (const word of words) {
      const match = /^(src|dst|sport|dport)=(.*)$/.exec(word)
      if (!match) continue
      const field = match[1] as keyof ConntrackTuple
      const tuple = tuples[0]![field] === undefined ? tuples[0]! : tuples[1]!
      tuple[field] = match[2]
    }
    const original = toTuple(tuples[0]!)
    const reply = toTuple(tuples[1]!)
    if (original && reply) flows.push({protocol, original, reply})
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
  return args
}
