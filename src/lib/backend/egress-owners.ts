/**
 * Egress SNAT (`--snat`) kept up to date as egress entries come and go, for renderers that render only
 * what changed: which entries list each pod, so the entry that decides a pod's interface (the last
 * by address) and the one that picks its source address per interface (the first) are found again
 * for the pods of changed entries only.
 */
import {compareIpv4, type Ipv4} from '../net/ipv4.js'
import type {NatEgress} from '../plan/model.js'
import {listDelta} from './model-delta.js'
import {itemsOf, lastItem, withItem, type OneOrMore} from '../net/one-or-more.js'

/** Past this many changed egress entries, building the index again costs about as much. */
const MAX_CHANGED_EGRESS = 64

/**
 * The entries listing each pod, in the order of the model (by address). Most pods are listed by one
 * entry, kept without a list (an array grown from empty by push keeps room for 16 more, and even an
 * array of one costs 56 bytes: 3 MB and 1 MB at 10,000 Mappings with 20,000 pods).
 */
export class EgressOwners {
  private readonly listing = new Map<Ipv4, OneOrMore<NatEgress>>()

  constructor(egress: readonly NatEgress[]) {
    for (const entry of egress) for (const pod of entry.podIPs) this.listing.set(pod, withItem(this.listing.get(pod), entry))
  }

  /** The entry that decides the pod's interface: the last listing it. */
  owner(pod: Ipv4): NatEgress | undefined {
    return lastItem(this.listing.get(pod))
  }

  /** Each interface the pod egresses through, with the first entry listing it there (the source address it leaves with). */
  sources(pod: Ipv4): Map<string, NatEgress> {
    const sources = new Map<string, NatEgress>()
    for (const entry of itemsOf(this.listing.get(pod))) if (!sources.has(entry.interface)) sources.set(entry.interface, entry)
    return sources
  }

  /** Takes `removed` out and puts `added` in at their place by address; changes this index in place. */
  update(removed: readonly NatEgress[], added: readonly NatEgress[]): void {
    for (const entry of removed) {
      for (const pod of entry.podIPs) {
        const kept = itemsOf(this.listing.get(pod)).filter((e) => e !== entry)
        if (kept.length === 0) this.listing.delete(pod)
        else this.listing.set(pod, kept.length === 1 ? kept[0]! : kept)
      }
    }
    for (const entry of added) {
      for (const pod of entry.podIPs) {
        const listed = this.listing.get(pod)
        if (listed === undefined) {
          this.listing.set(pod, entry)
          continue
        }
        const entries = Array.isArray(listed) ? listed : [listed]
        const at = entries.findIndex((e) => compareIpv4(e.address, entry.address) > 0)
        entries.splice(at === -1 ? entries.length : at, 0, entry)
        this.listing.set(pod, entries)
      }
    }
  }
}

/**
 * The egress entries that differ between two models' lists, with the pods they list; undefined
 * when either list is not strictly ordered by address (then the places of entries are unknown) or
 * when many differ.
 */
export function egressDelta(previous: readonly NatEgress[], next: readonly NatEgress[]): {removed: NatEgress[]; added: NatEgress[]; pods: Set<Ipv4>} | undefined {
  if (!byAddress(previous) || !byAddress(next)) return undefined
  const delta = listDelta(previous, next, (a, b) => compareIpv4(a.address, b.address), MAX_CHANGED_EGRESS)
  if (delta === undefined) return undefined
  const pods = new Set<Ipv4>()
  for (const entry of [...delta.removed, ...delta.added]) for (const pod of entry.podIPs) pods.add(pod)
  return {...delta, pods}
}

function byAddress(egress: readonly NatEgress[]): boolean {
  for (let i = 1; i < egress.length; i++) if (!(compareIpv4(egress[i - 1]!.address, egress[i]!.address) < 0)) return false
  return true
}

/**
 * `sorted` (ascending by `keyOf`, keys unique) without the items whose keys are in `remove`, and with
 * `insert` put in their place; a new array, the old one untouched. A few changes in a long list cost
 * a copy, not a sort.
 */
export function withSortedChanges<T>(sorted: readonly T[], keyOf: (item: T) => string, remove: Iterable<string>, insert: Iterable<T>): T[] {
  const result = [...sorted]
  const find = (key: string) => {
    let low = 0
    let high = result.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if (keyOf(result[middle]!) < key) low = middle + 1
      else high = middle
    }
    return low
  }
  for (const key of remove) {
    const at = find(key)
    if (at < result.length && keyOf(result[at]!) === key) result.splice(at, 1)
  }
  for (const item of insert) {
    const key = keyOf(item)
    const at = find(key)
    if (at < result.length && keyOf(result[at]!) === key) result[at] = item
    else result.splice(at, 0, item)
  }
  return result
}
