/**
 * The pods this host served before and serves no more, whose connections conntrack cleanup drops:
 * those the Mappings' statuses name at this host's addresses (what was served when they were last
 * written) that no verdict of this pass serves and no Service of a mode-direct Mapping lists.
 * `vanishedPods` finds them from the whole snapshot, as a one-shot sync must; a daemon keeps a
 * `VanishedPodsLedger`, which counts who names each pod and brings the counts up to date from the
 * Mappings and verdicts that changed, so that a pass after one change looks at that change.
 */
import type {MappingResource} from '../mapping/types.js'
import {compareIpv4, parseIpv4, type Ipv4} from '../net/ipv4.js'
import {changedObjects} from '../plan/changed.js'
import type {HostInfo, MappingVerdict, Plan, Snapshot} from '../plan/model.js'
import type {DirectListing} from './direct-flows.js'

/**
 * Pods this host served before and serves no more. A Mapping's status remembers, per address
 * of this host, the pods it was configured with; where kube-proxy runs on this host, its
 * connections to a pod that left are DNATed straight to that pod and would hang. `remembered`
 * are pods a failed cleanup left, kept unless they serve again. A pod the Service of a mode-direct
 * Mapping still lists (not ready, terminating) has not left: its connections stay until they end;
 * one `listedBefore` held and no Service lists now has.
 */
export function vanishedPods(
  snapshot: Snapshot,
  planned: Plan,
  host: HostInfo,
  remembered: readonly Ipv4[] = [],
  listing?: DirectListing,
  listedBefore: readonly Ipv4[] = [],
): Ipv4[] {
  const own = ownAddresses(host)
  const current = new Set<string>(listing?.all ?? [])
  const serve = (ip: Ipv4) => void current.add(ip)
  for (const verdict of planned.verdicts) eachServed(verdict, serve)
  const gone = new Set<Ipv4>([...remembered, ...listedBefore].filter((ip) => !current.has(ip)))
  const check = (ip: Ipv4) => void (current.has(ip) || gone.add(ip))
  for (const mapping of snapshot.mappings) eachNamed(mapping, own, check)
  return [...gone].sort(compareIpv4)
}

/** One serving in a pod's count: the statuses that name a pod stay below it (2^26, 67 million (Mapping, address) pairs), and the count stays an exact integer. */
const SERVED = 2 ** 26

/**
 * `vanishedPods` for a daemon, whose passes hand it snapshots and plans that share every unchanged
 * Mapping and verdict with the last ones (objects are replaced when they change, never edited).
 */
export class VanishedPodsLedger {
  private mappings: readonly MappingResource[] = []
  private verdicts: readonly MappingVerdict[] = []
  private listed: readonly Ipv4[] = []
  private own = new Set<string>()
  /**
   * For each pod, how many (Mapping, address of this host) statuses name it, plus SERVED times how
   * many verdicts serve it (and one more when a Service of a mode-direct Mapping lists it): one map of
   * 20,000 pods at 10,000 Mappings is 0.9 MB of heap, and two were kept.
   */
  private readonly counts = new Map<Ipv4, number>()
  /** The pods some status names and nothing serves. */
  private readonly unserved = new Set<Ipv4>()
  /** Pods whose counts moved since `unserved` was last brought up to date. */
  private readonly moved = new Set<Ipv4>()
  /** Objects the last call looked at (for tests: the work a pass after one change does). */
  visited = 0

  /** What `vanishedPods` returns for the same arguments. */
  vanished(snapshot: Snapshot, planned: Plan, host: HostInfo, remembered: readonly Ipv4[] = [], listing?: DirectListing, listedBefore: readonly Ipv4[] = []): Ipv4[] {
    this.visited = 0
    this.follow(snapshot.mappings, planned.verdicts, ownAddresses(host), listing?.all ?? [])
    const gone = new Set<Ipv4>(this.unserved)
    for (const ip of remembered) if (!this.serves(ip)) gone.add(ip)
    for (const ip of listedBefore) if (!this.serves(ip)) gone.add(ip)
    return [...gone].sort(compareIpv4)
  }

  private follow(mappings: readonly MappingResource[], verdicts: readonly MappingVerdict[], own: Set<string>, listed: readonly Ipv4[]): void {
    if (!sameMembers(own, this.own)) {
      // Other addresses: every status is read again for them.
      for (const mapping of this.mappings) this.countNamed(mapping, -1)
      this.own = own
      for (const mapping of mappings) this.countNamed(mapping, 1)
    } else {
      const {added, removed} = changedObjects(this.mappings, mappings)
      for (const mapping of removed) this.countNamed(mapping, -1)
      for (const mapping of added) this.countNamed(mapping, 1)
    }
    this.mappings = mappings
    const {added, removed} = changedObjects(this.verdicts, verdicts)
    for (const verdict of removed) this.countServed(verdict, -1)
    for (const verdict of added) this.countServed(verdict, 1)
    this.verdicts = verdicts
    if (listed !== this.listed && listed.length + this.listed.length > 0) {
      for (const ip of this.listed) this.count(ip, -SERVED)
      for (const ip of listed) this.count(ip, SERVED)
      this.listed = listed
    }
    for (const ip of this.moved) {
      const count = this.counts.get(ip) ?? 0
      if (count > 0 && count < SERVED) this.unserved.add(ip)
      else this.unserved.delete(ip)
    }
    this.moved.clear()
  }

  private countNamed(mapping: MappingResource, by: 1 | -1): void {
    this.visited++
    eachNamed(mapping, this.own, (ip) => this.count(ip, by))
  }

  private countServed(verdict: MappingVerdict, by: 1 | -1): void {
    this.visited++
    eachServed(verdict, (ip) => this.count(ip, by * SERVED))
  }

  private serves(ip: Ipv4): boolean {
    return (this.counts.get(ip) ?? 0) >= SERVED
  }

  private count(ip: Ipv4, by: number): void {
    const count = (this.counts.get(ip) ?? 0) + by
    if (count === 0) this.counts.delete(ip)
    else this.counts.set(ip, count)
    this.moved.add(ip)
  }
}

function ownAddresses(host: HostInfo): Set<string> {
  return new Set<string>(host.interfaces.flatMap((i) => i.addresses.map((a) => a.address)))
}

function sameMembers(a: ReadonlySet<string>, b: ReadonlySet<string>): boolean {
  if (a.size !== b.size) return false
  for (const item of a) if (!b.has(item)) return false
  return true
}

/** Calls `visit` with each pod `verdict` serves, at every address it programs. */
function eachServed(verdict: MappingVerdict, visit: (ip: Ipv4) => void): void {
  for (const {podIPs} of Object.values(verdict.configuredAddresses)) for (const ip of podIPs) visit(ip)
}

/** Calls `visit` with each pod `mapping`'s status names at the addresses in `own`; texts that are no address are left out. */
function eachNamed(mapping: MappingResource, own: ReadonlySet<string>, visit: (ip: Ipv4) => void): void {
  for (const [address, configured] of Object.entries(mapping.status?.configuredAddresses ?? {})) {
    if (!own.has(address)) continue
    for (const text of configured?.podIPs ?? []) {
      const ip = parseIpv4(text)
      if (ip) visit(ip)
    }
  }
}
