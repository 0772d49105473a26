/**
 * The nftables backend's egress sets (`--snat`) for a renderer that renders only what changed: the
 * pods of changed egress entries move between the interfaces' sets and the SNAT map, and the diff
 * is told exactly which elements changed.
 */
import type {Ipv4} from '../../net/ipv4.js'
import type {NatEgress, NatInterface, NatModel} from '../../plan/model.js'
import {EgressOwners, egressDelta, withSortedChanges} from '../egress-owners.js'
import {checkAddress} from '../model-checks.js'
import {sameObjects} from '../model-delta.js'
import {elementDelta, type ElementDelta} from './diff.js'
import {EGRESS_SNAT_MAP, egressSetName} from './names.js'
import {EGRESS_SET_TYPES, EGRESS_SNAT_TYPES, egressByInterface, egressComment, egressPodElement, egressSets, egressSnatElement, type EgressSets, type Marks} from './render.js'
import {elementKey} from './syntax.js'
import type {NftElement, NftSet} from './types.js'

/** The egress sets of one render, with what the next one needs to change them. */
export interface EgressPart {
  egress: readonly NatEgress[]
  interfaces: readonly NatInterface[]
  owners: EgressOwners
  /** The egress set of each interface index with pods, and the SNAT map when it has elements. */
  byIndex: Map<number, NftSet>
  snat: NftSet | undefined
  sets: EgressSets
  /** When derived from the last render's part: the element changes of its sets since. */
  deltas?: Map<string, ElementDelta>
}

/** The egress sets: the last ones, or those of the pods of changed entries changed, or all built again. */
export function egressPart(model: NatModel, marks: Marks, last: EgressPart | undefined): EgressPart {
  if (last && sameObjects(model.egress, last.egress) && model.interfaces === last.interfaces) return last
  const delta = last && model.interfaces === last.interfaces ? egressDelta(last.egress, model.egress) : undefined
  if (!last || !delta) {
    const sets = egressSets(egressByInterface(model, marks))
    const byIndex = new Map(sets.indexes.map((index) => [index, sets.sets.find((set) => set.name === egressSetName(index))!]))
    const snat = sets.sets.find((set) => set.name === EGRESS_SNAT_MAP)
    return {egress: model.egress, interfaces: model.interfaces, owners: new EgressOwners(model.egress), byIndex, snat, sets}
  }
  for (const entry of delta.added) {
    if (!marks.has(entry.interface)) throw new Error(`egress uses interface ${JSON.stringify(entry.interface)}, which is not an external interface`)
    checkAddress(entry.address)
    for (const pod of entry.podIPs) checkAddress(pod)
  }
  // The index is the last render's, changed in place: a render that fails forgets it.
  const {owners} = last
  const ownerOf = (pod: Ipv4) => {
    const owner = owners.owner(pod)
    return owner && {index: marks.get(owner.interface)!.index, comment: egressComment(owner)}
  }
  const before = new Map([...delta.pods].map((pod) => [pod, {owner: ownerOf(pod), sources: owners.sources(pod)}]))
  owners.update(delta.removed, delta.added)
  const pods = new Map<number, {remove: string[]; insert: NftElement[]}>()
  const podsOf = (index: number) => pods.get(index) ?? pods.set(index, {remove: [], insert: []}).get(index)!
  const snat = {remove: [] as string[], insert: [] as NftElement[]}
  for (const [pod, was] of before) {
    const now = ownerOf(pod)
    if (was.owner?.index !== now?.index || was.owner?.comment !== now?.comment) {
      if (was.owner) podsOf(was.owner.index).remove.push(pod)
      if (now) podsOf(now.index).insert.push(egressPodElement(pod, now.comment))
    }
    const sources = owners.sources(pod)
    for (const [iface, entry] of was.sources) if (!sameSource(sources.get(iface), entry)) snat.remove.push(snatKey(iface, pod))
    for (const [iface, entry] of sources) {
      if (!sameSource(was.sources.get(iface), entry)) snat.insert.push(egressSnatElement(iface, pod, entry.address, egressComment(entry)))
    }
  }
  const byIndex = new Map(last.byIndex)
  for (const [index, {remove, insert}] of pods) {
    const elements = withSortedChanges(last.byIndex.get(index)?.elements ?? [], podKey, remove, insert)
    if (elements.length === 0) byIndex.delete(index)
    else byIndex.set(index, {name: egressSetName(index), keyType: EGRESS_SET_TYPES.keyType, flags: [], elements})
  }
  const snatElements = withSortedChanges(last.snat?.elements ?? [], snatElementKey, snat.remove, snat.insert)
  const snatSet = snat.remove.length + snat.insert.length === 0 ? last.snat : snatMap(snatElements)
  const indexes = [...byIndex.keys()].sort((a, b) => a - b)
  const sets = {sets: [...indexes.map((index) => byIndex.get(index)!), ...(snatSet ? [snatSet] : [])], indexes}
  const deltas = new Map<string, ElementDelta>()
  for (const [index, {remove, insert}] of pods) {
    const now = byIndex.get(index)
    const before = last.byIndex.get(index)
    if (now && before) deltas.set(now.name, keyedDelta(now, before, [...remove, ...insert.map(podKey)], podKey))
  }
  if (snatSet && last.snat && snatSet !== last.snat) {
    const keys = [...snat.remove, ...snat.insert.map(snatElementKey)]
    deltas.set(snatSet.name, keyedDelta(snatSet, last.snat, keys, snatElementKey))
  }
  const byIndexSorted = new Map(indexes.map((index) => [index, byIndex.get(index)!]))
  return {egress: model.egress, interfaces: model.interfaces, owners, byIndex: byIndexSorted, snat: snatSet, sets, deltas}
}

/** The element changes between two sets sorted by `keyOf` (the printed key) that differ at most at `keys`. */
function keyedDelta(desired: NftSet, actual: NftSet, keys: string[], keyOf: (e: NftElement) => string): ElementDelta {
  const sorted = [...new Set(keys)].sort()
  const pick = (elements: readonly NftElement[]) => sorted.flatMap((key) => {
    const at = lowerBound(elements, key, keyOf)
    return at < elements.length && keyOf(elements[at]!) === key ? [elements[at]!] : []
  })
  return elementDelta(desired, pick(desired.elements), actual, pick(actual.elements))
}

/** The first position in `sorted` whose key is not below `key`. */
function lowerBound(sorted: readonly NftElement[], key: string, keyOf: (e: NftElement) => string): number {
  let low = 0
  let high = sorted.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (keyOf(sorted[middle]!) < key) low = middle + 1
    else high = middle
  }
  return low
}

/** The SNAT map of these elements, or none without any. */
function snatMap(elements: NftElement[]): NftSet | undefined {
  return elements.length === 0 ? undefined : {name: EGRESS_SNAT_MAP, keyType: EGRESS_SNAT_TYPES.keyType, flags: [], elements, dataType: EGRESS_SNAT_TYPES.dataType}
}

/** Whether two egress entries give a pod the same SNAT map element. */
function sameSource(a: NatEgress | undefined, b: NatEgress): boolean {
  return a === b || (a !== undefined && a.address === b.address && egressComment(a) === egressComment(b))
}

/** The key of an egress set's element (its pod) and of a SNAT map element, as nft prints them: the order the sets' elements are kept in. */
const podKey = (element: NftElement) => elementKey(EGRESS_SET_TYPES, element)
const snatElementKey = (element: NftElement) => elementKey(EGRESS_SNAT_TYPES, element)

/** A SNAT map element's key as nft prints it (interface names are checked: no quote inside), the order the map's elements are kept in. */
function snatKey(iface: string, pod: string): string {
  return `"${iface}" . ${pod}`
}
