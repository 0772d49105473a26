/**
 * The elements of an egress set or of the SNAT map kept as records rather than printed: the pods,
 * sorted by the key each one's element prints, and for each what its element prints besides the pod
 * (the same object for every pod of an entry). A daemon's renderer keeps them so (egress-part.ts)
 * and prints elements when they are read (printRun).
 *
 * In chunks of a few thousand records: V8 makes an array of more than about 16,000 items in its
 * large-object space, and here copying a run of 20,000 to change one record took 0.8 ms where 16,000
 * took 6 µs (docs/benchmarks.md, "nftables sets made when read"). A change copies the chunks it touches.
 */
import type {Ipv4} from '../../net/ipv4.js'
import {compareText} from '../../plan/order.js'
import type {NftElement} from './types.js'

/** Records sorted by key, in chunks of at most 2 x RUN_CHUNK, none empty. */
export interface EgressRun<Look> {
  readonly chunks: readonly RunChunk<Look>[]
}

interface RunChunk<Look> {
  readonly pods: readonly Ipv4[]
  readonly looks: readonly Look[]
}

/** The key of a record's element: the order of a run. */
export type RecordKey<Look> = (pod: Ipv4, look: Look) => string

/** Records per chunk as a run is made; a chunk that grows past twice this is cut into such again. */
export const RUN_CHUNK = 4096

/** The run of these records, sorted by key already (`looks[i]` goes with `pods[i]`). */
export function egressRun<Look>(pods: readonly Ipv4[], looks: readonly Look[], chunk = RUN_CHUNK): EgressRun<Look> {
  return {chunks: chunked(pods, looks, chunk)}
}

/** The elements of `run`, in its order. */
export function printRun<Look>(run: EgressRun<Look>, print: (pod: Ipv4, look: Look) => NftElement): NftElement[] {
  const elements: NftElement[] = []
  eachPrinted(run, print, (element) => elements.push(element))
  return elements
}

/** The elements of `run`, printed, handed to `visit` one by one in order. */
export function eachPrinted<Look>(run: EgressRun<Look>, print: (pod: Ipv4, look: Look) => NftElement, visit: (element: NftElement) => void): void {
  for (const {pods, looks} of run.chunks) for (let i = 0; i < pods.length; i++) visit(print(pods[i]!, looks[i]!))
}

/** The record of `key`, if `run` has one. */
export function findRecord<Look>(run: EgressRun<Look>, key: string, keyOf: RecordKey<Look>): [Ipv4, Look] | undefined {
  const chunk = run.chunks[chunkOf(run.chunks, key, keyOf)]
  if (!chunk) return undefined
  const at = lowerBound(chunk, key, keyOf)
  return present(chunk, at, key, keyOf) ? [chunk.pods[at]!, chunk.looks[at]!] : undefined
}

/**
 * `run` without the records whose keys are in `remove` and with `insert` put in their places (one
 * whose key is there already replaces it; the last of one key wins); `run` untouched, the chunks
 * no change falls in shared with it.
 */
export function changedRun<Look>(run: EgressRun<Look>, keyOf: RecordKey<Look>, remove: readonly string[], insert: readonly [Ipv4, Look][], chunk = RUN_CHUNK): EgressRun<Look> {
  if (remove.length + insert.length === 0) return run
  const chunks = run.chunks.length > 0 ? [...run.chunks] : [{pods: [], looks: []}]
  const changes = new Map<number, {remove: string[]; insert: [Ipv4, Look][]}>()
  const changesAt = (key: string) => {
    const at = chunkOf(chunks, key, keyOf)
    return changes.get(at) ?? changes.set(at, {remove: [], insert: []}).get(at)!
  }
  for (const key of remove) changesAt(key).remove.push(key)
  for (const record of insert) changesAt(keyOf(...record)).insert.push(record)
  // The last chunk first: one cut in several, or dropped, leaves the places of those before it as they were.
  for (const at of [...changes.keys()].sort((a, b) => b - a)) {
    const {pods, looks} = changedChunk(chunks[at]!, keyOf, changes.get(at)!.remove, changes.get(at)!.insert)
    // Cut again when it grew past twice the size, copied to its length (no room left by push) when not.
    chunks.splice(at, 1, ...chunked(pods, looks, pods.length > 2 * chunk ? chunk : 2 * chunk))
  }
  return {chunks}
}

/** `pods` and `looks` in chunks of `size`. */
function chunked<Look>(pods: readonly Ipv4[], looks: readonly Look[], size: number): RunChunk<Look>[] {
  const chunks: RunChunk<Look>[] = []
  for (let at = 0; at < pods.length; at += size) chunks.push({pods: pods.slice(at, at + size), looks: looks.slice(at, at + size)})
  return chunks
}

/** The chunk a record of `key` is in or goes to: the first whose last key is not below it, else the last. */
function chunkOf<Look>(chunks: readonly RunChunk<Look>[], key: string, keyOf: RecordKey<Look>): number {
  let low = 0
  let high = chunks.length - 1
  while (low < high) {
    const middle = (low + high) >>> 1
    const {pods, looks} = chunks[middle]!
    const last = pods.length - 1
    if (keyOf(pods[last]!, looks[last]!) < key) low = middle + 1
    else high = middle
  }
  return low
}

/** The first place in `chunk` whose key is not below `key`. */
function lowerBound<Look>({pods, looks}: RunChunk<Look>, key: string, keyOf: RecordKey<Look>): number {
  let low = 0
  let high = pods.length
  while (low < high) {
    const middle = (low + high) >>> 1
    if (keyOf(pods[middle]!, looks[middle]!) < key) low = middle + 1
    else high = middle
  }
  return low
}

function present<Look>({pods, looks}: RunChunk<Look>, at: number, key: string, keyOf: RecordKey<Look>): boolean {
  return at < pods.length && keyOf(pods[at]!, looks[at]!) === key
}

/** `chunk` with the changes that fall in it, in new lists filled in one pass. */
function changedChunk<Look>(chunk: RunChunk<Look>, keyOf: RecordKey<Look>, remove: readonly string[], insert: readonly [Ipv4, Look][]): RunChunk<Look> {
  const {pods, looks} = chunk
  const dropped = new Set<number>()
  for (const key of remove) {
    const at = lowerBound(chunk, key, keyOf)
    if (present(chunk, at, key, keyOf)) dropped.add(at)
  }
  // Each record put in goes before the first record not below its key; the last one of a key wins.
  const puts = new Map<string, {at: number; pod: Ipv4; look: Look}>()
  for (const [pod, look] of insert) {
    const key = keyOf(pod, look)
    const at = lowerBound(chunk, key, keyOf)
    if (present(chunk, at, key, keyOf)) dropped.add(at)
    puts.set(key, {at, pod, look})
  }
  const added = [...puts].sort(([a], [b]) => compareText(a, b)).map(([, put]) => put)
  const drops = [...dropped].sort((a, b) => a - b)
  const changed = {pods: [] as Ipv4[], looks: [] as Look[]}
  // The places of the next record put in and of the next one dropped, -1 past the last.
  let put = 0
  let drop = 0
  let putAt = added.length > 0 ? added[0]!.at : -1
  let dropAt = drops.length > 0 ? drops[0]! : -1
  for (let i = 0; i <= pods.length; i++) {
    while (putAt === i) {
      changed.pods.push(added[put]!.pod)
      changed.looks.push(added[put]!.look)
      putAt = ++put < added.length ? added[put]!.at : -1
    }
    if (i === pods.length) break
    if (i === dropAt) dropAt = ++drop < drops.length ? drops[drop]! : -1
    else {
      changed.pods.push(pods[i]!)
      changed.looks.push(looks[i]!)
    }
  }
  return changed
}
