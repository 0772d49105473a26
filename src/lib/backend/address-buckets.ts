/**
 * What both backends' renderers keep between renders: each Mapping's share of the state, bucketed by
 * the external addresses it is on, each address assembled into a part from its bucket, and the names
 * each share takes (group chains, affinity lists and sets), which no two Mappings may share.
 */
import type {Ipv4} from '../net/ipv4.js'

/** Thrown when two Mappings claim one endpoint or name: the full render says which, in its words. */
export class ShareConflict extends Error {}

/** One Mapping's share of a state: what it adds at each of its addresses, and the names it takes. */
export interface Share {
  readonly byAddress: ReadonlyMap<Ipv4, unknown>
  readonly names: readonly string[]
}

/** An address assembled from the shares on it. */
export interface Part<S> {
  readonly shares: readonly S[]
}

export interface Buckets<S, P> {
  parts: Map<Ipv4, P>
  /** Each name taken, with the share taking it. */
  claims: Map<string, S>
  /** The addresses assembled, with their shares. */
  affected: Map<Ipv4, S[]>
}

/** Every address assembled from the shares on it. */
export function allBuckets<S extends Share, P>(shares: Iterable<S>, assemble: (address: Ipv4, shares: S[]) => P): Buckets<S, P> {
  const buckets = new Map<Ipv4, S[]>()
  const claims = new Map<string, S>()
  for (const share of shares) {
    claim(claims, share)
    for (const address of share.byAddress.keys()) {
      const bucket = buckets.get(address)
      if (bucket) bucket.push(share)
      else buckets.set(address, [share])
    }
  }
  const parts = new Map<Ipv4, P>()
  for (const [address, on] of buckets) parts.set(address, assemble(address, on))
  return {parts, claims, affected: buckets}
}

/**
 * The last parts with the `removed` shares taken out and the `added` ones put in; only their
 * addresses are assembled again, each given its previous part to reuse what did not change. The claims are the last ones, changed in place: a caller whose
 * render fails must forget them.
 */
export function patchBuckets<S extends Share, P extends Part<S>>(
  last: {parts: ReadonlyMap<Ipv4, P>; claims: Map<string, S>},
  removed: readonly S[],
  added: readonly S[],
  assemble: (address: Ipv4, shares: S[], previous: P | undefined) => P,
): Buckets<S, P> {
  const affected = new Map<Ipv4, S[]>()
  const bucket = (address: Ipv4) => affected.get(address) ?? [...(last.parts.get(address)?.shares ?? [])]
  const {claims} = last
  for (const share of removed) {
    for (const address of share.byAddress.keys()) affected.set(address, bucket(address).filter((s) => s !== share))
    for (const name of share.names) if (claims.get(name) === share) claims.delete(name)
  }
  for (const share of added) {
    claim(claims, share)
    for (const address of share.byAddress.keys()) affected.set(address, [...bucket(address), share])
  }
  const parts = new Map(last.parts)
  for (const [address, shares] of affected) {
    if (shares.length === 0) parts.delete(address)
    else parts.set(address, assemble(address, shares, last.parts.get(address)))
  }
  return {parts, claims, affected}
}

/** Claims the names of `share`; another share's claim is a conflict the full render names. */
function claim<S extends Share>(claims: Map<string, S>, share: S): void {
  for (const name of share.names) {
    const owner = claims.get(name)
    if (owner !== undefined && owner !== share) throw new ShareConflict(`${name} is claimed twice`)
    claims.set(name, share)
  }
}

/** Whether `parts` holds exactly the addresses `last` held, given that only `affected` may differ. */
export function sameAddresses(last: ReadonlyMap<Ipv4, unknown>, parts: ReadonlyMap<Ipv4, unknown>, affected: ReadonlyMap<Ipv4, unknown>): boolean {
  if (parts.size !== last.size) return false
  for (const address of affected.keys()) if (!last.has(address) || !parts.has(address)) return false
  return true
}
