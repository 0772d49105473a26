/**
 * Where the watch's live heap goes at N Mappings, part by part, without a kernel or an API server:
 * the synthetic cluster as the API would send it (each object parsed from its own JSON, with a uid,
 * a resourceVersion and, for Mappings, the status the first pass writes), kept as the informer
 * caches keep it, sorted as a pass reads it, planned with the watch's plan memo, and rendered by a
 * backend that keeps its parts from the first pass on. Prints the heap each part adds, after a
 * full collection, in MB.
 *
 *   node --expose-gc --import tsx bench/memory-parts.ts [COUNT [iptables|nftables]]
 */
import {BACKEND_NAMES, createBackend, type BackendName} from '../src/lib/backend/registry.js'
import type {Runner} from '../src/lib/host/runner.js'
import type {Snapshot} from '../src/lib/plan/model.js'
import {PlanMemo} from '../src/lib/plan/memo.js'
import type {KindName, WatchedKind, WireObject} from '../src/lib/source/kube/kinds.js'
import {SortedObjects} from '../src/lib/source/kube/sorted.js'
import {cachedObject} from '../src/lib/source/kube/trim.js'
import {desiredStatus, ownAddresses} from '../src/lib/sync/status.js'
import {printTable} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from './synthetic.js'
import {liveMb} from './live-heap.js'

const count = Number(process.argv[2] ?? 10_000)
const backendName = (process.argv[3] ?? 'iptables') as BackendName
if (!Number.isInteger(count) || count < 1 || !BACKEND_NAMES.includes(backendName)) throw new Error('usage: memory-parts.ts [COUNT [iptables|nftables]]')

const {host, addresses} = syntheticHost()
const KINDS: WatchedKind[] = [
  {name: 'Mapping', apiVersion: 'smartnat.aureacentral.com/v1alpha1'},
  {name: 'Service', apiVersion: 'v1'},
  {name: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1'},
].map((kind) => ({...kind, name: kind.name as KindName, path: '', listPage: () => Promise.reject(new Error('not listed here'))}))

/** Each object of the synthetic cluster as JSON text, as a list page or a watch event carries it. */
function wireTexts(): string[][] {
  const base = syntheticSnapshot(count, addresses)
  const {verdicts} = new PlanMemo().plan(base, host, BENCH_PLAN_OPTIONS)
  const own = ownAddresses(host)
  const written = new Date('2026-12-03T10:00:00Z')
  const wire = <T extends {metadata: object}>(object: T, i: number, kind: string) =>
    JSON.stringify({...object, metadata: {...object.metadata, uid: `0b7a${String(i).padStart(6, '0')}-1c2d-4e5f-8a9b-${kind}`, resourceVersion: String(100_000 + i), creationTimestamp: '2026-12-03T09:00:00Z'}})
  return [
    base.mappings.map((m, i) => wire({...m, status: desiredStatus(m, verdicts[i]!, own, written, 'edge-1').status}, i, 'mapping')),
    base.services.map((s, i) => wire(s, i, 'service')),
    base.endpointSlices.map((s, i) => wire(s, i, 'slice')),
  ]
}

const rows: [string, number][] = []
const texts = wireTexts()
let last = liveMb()
const measured = (what: string) => {
  const now = liveMb()
  rows.push([what, Math.round((now - last) * 10) / 10])
  last = now
}

const caches = KINDS.map(() => new SortedObjects<WireObject>())
KINDS.forEach((kind, k) => {
  for (const text of texts[k]!) {
    const object = cachedObject(kind, JSON.parse(text) as WireObject)
    caches[k]!.set(object)
  }
  measured(`the ${kind.name} cache`)
})
// The texts go now, not counted against any part.
texts.length = 0
last = liveMb()
const snapshot: Snapshot = {
  mappings: caches[0]!.sorted() as never,
  services: caches[1]!.sorted() as never,
  endpointSlices: caches[2]!.sorted() as never,
  addressPools: [],
  namespaces: [],
}
measured('the caches sorted for a pass')
const memo = new PlanMemo()
const plan = memo.plan(snapshot, host, BENCH_PLAN_OPTIONS)
measured('the kept plan (PlanMemo and the plan it returns)')
const runner: Runner = {run: () => Promise.reject(new Error('no kernel here'))} as unknown as Runner
// The backend is kept too: its renderer holds the parts it renders again from.
const backend = createBackend(backendName, runner, {rendersAgain: true})
const state = backend.render(plan.model)
measured(`the ${backendName} backend's kept parts and the state it rendered`)

console.log(`\n# The watch's live heap at ${count.toLocaleString('en')} Mappings, part by part (${backendName})\n`)
printTable(['part', 'MB'], [...rows, ['total', Math.round(rows.reduce((sum, [, mb]) => sum + mb, 0) * 10) / 10]])
// Alive until here, so that every part is counted.
void [memo, backend, state, caches]
