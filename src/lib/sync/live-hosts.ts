/**
 * Which configuredAddresses keys a live host maintains. Each smartnat host renews a Lease of its own
 * (lease.ts); a key names the host that wrote it. A key is stale when its host's Lease has expired,
 * or when it names no host at all: the Go controller wrote those, and under a CRD with a status
 * subresource it can no longer write or remove them (its updates of the whole object leave status
 * alone), so no live host maintains them. A key of an address a live smartnat host serves is that
 * host's to rewrite; the other stale keys are removed by the lowest-named live host.
 */
import {compareText} from '../plan/order.js'

/** The hosts whose Lease was current when last read, this host included. */
export interface LiveHosts {
  hosts: ReadonlySet<string>
}

/** A configuredAddresses entry as stored: the host that wrote it, if any. */
interface KeyEntry {
  host?: string
}

/** True when a live host maintains the key: it names a host, and that host's Lease is current (or liveness is unknown). */
export function isLiveKey(entry: KeyEntry | undefined, live: LiveHosts | undefined): boolean {
  const host = entry?.host
  if (host === undefined) return false
  return live === undefined || live.hosts.has(host)
}

/** True when `hostName` removes the stale keys that no live host serves: it is the lowest-named live host. */
export function removesStaleKeys(live: LiveHosts | undefined, hostName: string | undefined): boolean {
  if (live === undefined || hostName === undefined || !live.hosts.has(hostName)) return false
  return [...live.hosts].sort(compareText)[0] === hostName
}

/** True when some Mapping holds a key no live host maintains. */
export function hasStaleKeys(mappings: readonly {status?: {configuredAddresses?: Record<string, KeyEntry | undefined>}}[], live: LiveHosts): boolean {
  return mappings.some((m) => Object.values(m.status?.configuredAddresses ?? {}).some((entry) => !isLiveKey(entry, live)))
}
