/**
 * The nftables backend's egress sets (`--snat`) for a renderer that renders only what changed: the
 * pods of changed egress entries move between the interfaces' sets and the SNAT map, and the diff
 * is told exactly which elements changed.
 *
 * The sets keep their elements as records (egress-runs.ts) and print them when read: each of
 * the 40,000 elements at 10,000 Mappings carries its entry's comment, the names of up to 128
 * characters of Mappings, and kept printed they took 7 MB of a daemon's heap (docs/benchmarks.md,
 * "nftables sets made when read"). A pass after a change works on the records and prints the
 * elements it changes; a pass that reads the kernel prints the sets once to compare them.
 */
import type {Ipv4} from '../../net/ipv4.js'
import type {NatEgress, NatInterface, NatModel} from '../../plan/model.js'
import {EgressOwners, egressDelta} from '../egress-owners.js'
import {checkAddress} from '../model-checks.js'
import {sameObjects} from '../model-delta.js'
import {elementDelta, type ElementDelta} from './diff.js'
import {changedRun, eachPrinted, findRecord, printRun, type EgressRun, type RecordKey} from './egress-runs.js'
import {EGRESS_SNAT_MAP, egressSetName} from './names.js'
import {
  EGRESS_SET_TYPES,
  EGRESS_SNAT_TYPES,
  egressComment,
  egressPodElement,
  egressRuns,
  printEgressSnat,
  snatKey,
  snatLook,
  type EgressSets,
  type Marks,
  type SnatLook,
} from './render.js'
import {setMadeOnRead} from './syntax.js'
import type {NftElement, NftSet} from './types.js'

/** An egress set or the SNAT map: its records, and the set whose elements are printed from them. */
interface RecordedSet<Look> {
  run: EgressRun<Look>
  set: NftSet
}

/** The egress sets of one render, with what the next one needs to change them. */
export interface EgressPart {
  egress: readonly NatEgress[]
  interfaces: readonly NatInterface[]
  owners: EgressOwners
  /** The egress set of each interface index with pods, and the SNAT map when it has elements. */
  byIndex: Map<number, RecordedSet<string>>
  snat: RecordedSet<SnatLook> | undefined
  sets: EgressSets
  /** When derived from the last render's part: the element changes of its sets since. */
  deltas?: Map<string, ElementDelta>
}

/** The egress sets: the last ones, or those of the pods of changed entries changed, or all built again. */
export function egressPart(model: NatModel, marks: Marks, last: EgressPart | undefined): EgressPart {
  if (last && sameObjects(model.egress, last.egress) && model.interfaces === last.interfaces) return last
  const delta = last && model.interfaces === last.interfaces ? egressDelta(last.egress, model.egress) : undefined
  if (!last || !delta) {
    const runs = egressRuns(model, marks)
    const byIndex = new Map([...runs.byIndex].map(([index, run]) => [index, podSet(index, run)]))
    const snat = runs.snat.chunks.length === 0 ? undefined : snatMap(runs.snat)
    return {egress: model.egress, interfaces: model.interfaces, owners: new EgressOwners(model.egress), byIndex, snat, sets: egressSets(byIndex, snat)}
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
  const pods = new Map<number, Changes<string>>()
  const podsOf = (index: number) => pods.get(index) ?? pods.set(index, {remove: [], insert: []}).get(index)!
  const snat: Changes<SnatLook> = {remove: [], insert: []}
  for (const [pod, was] of before) {
    const now = ownerOf(pod)
    if (was.owner?.index !== now?.index || was.owner?.comment !== now?.comment) {
      if (was.owner) podsOf(was.owner.index).remove.push(pod)
      if (now) podsOf(now.index).insert.push([pod, now.comment])
    }
    const sources = owners.sources(pod)
    for (const [iface, entry] of was.sources) if (!sameSource(sources.get(iface), entry)) snat.remove.push(snatKey(iface, pod))
    for (const [iface, entry] of sources) if (!sameSource(was.sources.get(iface), entry)) snat.insert.push([pod, snatLook(entry)])
  }
  const byIndex = new Map(last.byIndex)
  for (const [index, {remove, insert}] of pods) {
    const run = changedRun(last.byIndex.get(index)?.run ?? NO_RECORDS, podKey, remove, insert)
    if (run.chunks.length === 0) byIndex.delete(index)
    else byIndex.set(index, podSet(index, run))
  }
  let snatSet = last.snat
  if (snat.remove.length + snat.insert.length > 0) {
    const run = changedRun(last.snat?.run ?? NO_RECORDS, snatRecordKey, snat.remove, snat.insert)
    snatSet = run.chunks.length === 0 ? undefined : snatMap(run)
  }
  const sorted = new Map([...byIndex.keys()].sort((a, b) => a - b).map((index) => [index, byIndex.get(index)!]))
  const deltas = new Map<string, ElementDelta>()
  for (const [index, {remove, insert}] of pods) {
    const now = sorted.get(index)
    const then = last.byIndex.get(index)
    if (now && then) deltas.set(now.set.name, keyedDelta(now, then, [...remove, ...insert.map(([pod]) => pod)], podKey, egressPodElement))
  }
  if (snatSet && last.snat && snatSet !== last.snat) {
    const keys = [...snat.remove, ...snat.insert.map(([pod, look]) => snatRecordKey(pod, look))]
    deltas.set(snatSet.set.name, keyedDelta(snatSet, last.snat, keys, snatRecordKey, printEgressSnat))
  }
  return {egress: model.egress, interfaces: model.interfaces, owners, byIndex: sorted, snat: snatSet, sets: egressSets(sorted, snatSet), deltas}
}

/** Records to take out of a set (by key) and to put in. */
interface Changes<Look> {
  remove: string[]
  insert: [Ipv4, Look][]
}

const NO_RECORDS: EgressRun<never> = {chunks: []}

/** The key a record's element prints: the pod in an egress set, interface and pod in the SNAT map; the order of the records. */
const podKey = (pod: Ipv4) => pod
const snatRecordKey = (pod: Ipv4, look: SnatLook) => snatKey(look.interface, pod)

/** The sets of the table, by interface index, then the SNAT map. */
function egressSets(byIndex: ReadonlyMap<number, RecordedSet<string>>, snat: RecordedSet<SnatLook> | undefined): EgressSets {
  return {sets: [...[...byIndex.values()].map(({set}) => set), ...(snat ? [snat.set] : [])], indexes: [...byIndex.keys()]}
}

function podSet(index: number, run: EgressRun<string>): RecordedSet<string> {
  return {run, set: setMadeOnRead(egressSetName(index), EGRESS_SET_TYPES, () => printRun(run, egressPodElement), (visit) => eachPrinted(run, egressPodElement, visit))}
}

function snatMap(run: EgressRun<SnatLook>): RecordedSet<SnatLook> {
  return {run, set: setMadeOnRead(EGRESS_SNAT_MAP, EGRESS_SNAT_TYPES, () => printRun(run, printEgressSnat), (visit) => eachPrinted(run, printEgressSnat, visit))}
}

/** The element changes between two recorded sets that differ at most at `keys`: those elements alone printed and compared. */
function keyedDelta<Look>(desired: RecordedSet<Look>, actual: RecordedSet<Look>, keys: string[], keyOf: RecordKey<Look>, print: (pod: Ipv4, look: Look) => NftElement): ElementDelta {
  const sorted = [...new Set(keys)].sort()
  const pick = (run: EgressRun<Look>) =>
    sorted.flatMap((key) => {
      const record = findRecord(run, key, keyOf)
      return record ? [print(...record)] : []
    })
  return elementDelta(desired.set, pick(desired.run), actual.set, pick(actual.run))
}

/** Whether two egress entries give a pod the same SNAT map element. */
function sameSource(a: NatEgress | undefined, b: NatEgress): boolean {
  return a === b || (a !== undefined && a.address === b.address && egressComment(a) === egressComment(b))
}
