/**
 * The nftables backend's render for a daemon: it keeps what it rendered last and, when the next model
 * holds mostly the same NatMapping and NatEgress objects (the planner reuses what did not change),
 * renders only the Mappings that changed and the addresses they are on, and assembles the rest from
 * the parts it kept. The state is exactly renderNftables(model); it also tells the diff which
 * elements differ from the state it was derived from (diff.ts, StateDerivation).
 */
import {checkInterfaceName} from '../../net/interface-name.js'
import type {Ipv4} from '../../net/ipv4.js'
import type {NatMapping, NatModel} from '../../plan/model.js'
import {compareText} from '../../plan/order.js'
import {renderIpRules, renderRoutes} from '../../routing/render.js'
import {allBuckets, patchBuckets, sameAddresses} from '../address-buckets.js'
import {sameObjects, type ListDelta} from '../model-delta.js'
import {PartsRenderer} from '../parts-renderer.js'
import {addressPart, mappingShare, type AddressPart, type MappingShare} from './address-parts.js'
import {elementDelta, rememberDerivation, type ElementDelta} from './diff.js'
import {egressPart, type EgressPart} from './egress-part.js'
import {DIRECT_SET_TYPES, renderPickChains, type DirectTable} from './direct.js'
import {rememberMappings} from './mappings.js'
import {ENDPOINTS_MAP, allowedSetName} from './names.js'
import {ENDPOINT_TYPE, ENDPOINTS_MAP_DATA, allowedKeyType, assembleTable, interfaceMarks, renderNftables} from './render.js'
import {setMadeOnRead} from './syntax.js'
import type {NftChain, NftElement, NftSet, NftState} from './types.js'

/** A set of the endpoint elements and the runs, one per address, it was assembled from. */
interface RunSet {
  set: NftSet
  runs: NftElement[][]
}

interface Rendered {
  model: NatModel
  state: NftState
  parts: Map<Ipv4, AddressPart>
  /** Parts in the order of their elements' printed keys (`address `). */
  textual: AddressPart[]
  /** Group ids and group chain and affinity set names, each with the Mapping that takes it. */
  claims: Map<string, MappingShare>
  /** Mappings whose groups have affinity, with their chains (sorted by name) and sets. */
  affinity: {shares: Set<MappingShare>; chains: NftChain[]; sets: NftSet[]}
  egress: EgressPart
  sets: Map<string, RunSet>
}

/** The declaration of each set the endpoints' elements go to (allow-lists added per prefix length). */
const DECLARATIONS = new Map<string, {keyType: string[]; dataType?: string[]}>([
  [ENDPOINTS_MAP, {keyType: ENDPOINT_TYPE, dataType: ENDPOINTS_MAP_DATA}],
  ...DIRECT_SET_TYPES.map(({name, keyType, dataType}) => [name, {keyType, ...(dataType ? {dataType} : {})}] as [string, {keyType: string[]; dataType?: string[]}]),
])
for (let length = 0; length <= 32; length++) DECLARATIONS.set(allowedSetName(length), {keyType: allowedKeyType(length)})

/** The nftables state of a daemon's models, from the parts of the last render where it can (parts-renderer.ts). */
export class NftablesRenderer extends PartsRenderer<NftState, MappingShare, Rendered> {
  protected renderWhole(model: NatModel): NftState {
    return renderNftables(model)
  }

  protected renderShare(mapping: NatMapping): MappingShare {
    return mappingShare(mapping)
  }

  /** Assembles `model` from parts: the last render's patched where `from` has them, else all (kept Mappings' shares reused). */
  protected assemble(model: NatModel, from: {last: Rendered; delta: ListDelta<NatMapping>} | undefined): Rendered {
    const last = from?.last
    const delta = from?.delta
    for (const iface of model.interfaces) checkInterfaceName(iface.name)
    const marks = interfaceMarks(model)
    const removed = last && delta ? delta.removed.map((m) => this.kept(m)) : []
    const added = last && delta ? delta.added.map((m) => this.share(m)) : []
    const all = last && delta ? [] : model.mappings.map((m) => this.share(m))
    const {parts, claims, affected} = last && delta ? patchBuckets(last, removed, added, addressPart) : allBuckets(all, addressPart)
    const affinityShares = this.affinityShares(last && delta ? last : undefined, removed, added, all)
    this.stats.addressesAssembled = affected.size
    const egress = egressPart(model, marks, last?.egress)
    const kept = last !== undefined && sameAddresses(last.parts, parts, affected)
    const textual = kept ? last.textual.map((p) => parts.get(p.address)!) : [...parts.values()].sort((a, b) => compareRunOrder(a.address, b.address))

    const names = new Set<string>([ENDPOINTS_MAP])
    let largest = 0
    let direct = false
    for (const part of textual) {
      for (const name of part.runs.keys()) names.add(name)
      largest = Math.max(largest, part.largest)
      direct ||= part.direct
    }
    if (direct) for (const {name} of DIRECT_SET_TYPES) names.add(name)
    const sets = new Map<string, RunSet>()
    for (const name of names) sets.set(name, runSet(name, textual.map((p) => p.runs.get(name) ?? NO_ELEMENTS), last?.sets.get(name)))
    const affinity = last && !affinityShares.changed ? last.affinity : {shares: affinityShares.shares, ...sortedAffinity(affinityShares.shares)}
    const lengths = [...names].flatMap((name) => (name.startsWith('allowed_') ? [Number(name.slice('allowed_'.length))] : [])).sort((a, b) => b - a)
    const mappingSets = [ENDPOINTS_MAP, ...lengths.map(allowedSetName)].map((name) => sets.get(name)!.set)
    const directTable: DirectTable | undefined = direct
      ? {sets: [...DIRECT_SET_TYPES.map(({name}) => sets.get(name)!.set), ...affinity.sets], pickChains: renderPickChains(largest), chains: affinity.chains}
      : undefined
    const table = assembleTable(model, marks, {sets: mappingSets, lengths, egress: egress.sets, ...(directTable ? {direct: directTable} : {})})
    const state: NftState = {table, ipRules: renderIpRules(model), routes: renderRoutes(model)}
    rememberMappings(state, mappingsOf(textual))
    const rendered: Rendered = {model, state, parts, textual, claims, affinity, egress, sets}
    if (last && delta) this.remember(rendered, last, affected)
    return rendered
  }

  /** The Mappings whose groups have affinity: the last ones, or with `removed` and `added` taken out and put in; whether they changed. */
  private affinityShares(last: Rendered | undefined, removed: readonly MappingShare[], added: readonly MappingShare[], all: readonly MappingShare[]): {shares: Set<MappingShare>; changed: boolean} {
    const withAffinity = (share: MappingShare) => share.affinity.chains.length > 0
    if (!last) return {shares: new Set(all.filter(withAffinity)), changed: true}
    // The last render's set, changed in place: a render that fails forgets it.
    const {shares} = last.affinity
    let changed = false
    for (const share of removed) if (shares.delete(share)) changed = true
    for (const share of added.filter(withAffinity)) {
      shares.add(share)
      changed = true
    }
    return {shares, changed}
  }

  /** Tells the diff which elements differ from the last state: those of the addresses assembled again. */
  private remember(rendered: Rendered, last: Rendered, affected: ReadonlyMap<Ipv4, unknown>): void {
    const addresses = [...affected.keys()].sort(compareRunOrder)
    const deltas = new Map<string, ElementDelta>()
    for (const [name, {set}] of rendered.sets) {
      const before = last.sets.get(name)?.set
      if (before === undefined || before === set) continue
      const delta: ElementDelta = {delete: [], add: []}
      for (const address of addresses) {
        const want = rendered.parts.get(address)?.runs.get(name) ?? NO_ELEMENTS
        const have = last.parts.get(address)?.runs.get(name) ?? NO_ELEMENTS
        const changes = elementDelta(set, want, before, have)
        delta.delete.push(...changes.delete)
        delta.add.push(...changes.add)
      }
      deltas.set(name, delta)
    }
    if (rendered.egress !== last.egress) for (const [name, delta] of rendered.egress.deltas ?? []) deltas.set(name, delta)
    rememberDerivation(rendered.state, {base: last.state, sets: deltas})
  }
}

const NO_ELEMENTS: NftElement[] = []

/**
 * How to tell the Mappings the parts name, each once. Made out here: a closure made in a render
 * would keep everything that render's scope holds, the last render with it.
 */
function mappingsOf(parts: readonly AddressPart[]): () => Set<string> {
  return () => {
    const mappings = new Set<string>()
    for (const part of parts) for (const mapping of part.mappings) mappings.add(mapping)
    return mappings
  }
}

/** The chains of groups with affinity, sorted by name, and their sets. */
function sortedAffinity(shares: Iterable<MappingShare>): {chains: NftChain[]; sets: NftSet[]} {
  const chains: NftChain[] = []
  const sets: NftSet[] = []
  for (const share of shares) {
    chains.push(...share.affinity.chains)
    sets.push(...share.affinity.sets)
  }
  return {chains: chains.sort((a, b) => compareText(a.name, b.name)), sets}
}

/** The order of an address's run among elements sorted by printed key. */
function compareRunOrder(a: Ipv4, b: Ipv4): number {
  const x = `${a} `
  const y = `${b} `
  return x < y ? -1 : x > y ? 1 : 0
}

/**
 * A set of the runs' elements: the last one when every run is the same, else one whose elements
 * are the runs' joined when read (a pass after a change never reads them: 60,000 elements copied
 * for each set it changed, and kept twice, in the runs and in the set).
 */
function runSet(name: string, runs: NftElement[][], last: RunSet | undefined): RunSet {
  if (last && sameObjects(runs, last.runs)) return last
  const each = (visit: (element: NftElement) => void) => {
    for (const run of runs) for (const element of run) visit(element)
  }
  return {set: setMadeOnRead(name, DECLARATIONS.get(name)!, () => ([] as NftElement[]).concat(...runs), each), runs}
}
