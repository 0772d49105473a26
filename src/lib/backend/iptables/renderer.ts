/**
 * The iptables backend's render for a daemon: it keeps what it rendered last and, when the next model
 * holds mostly the same NatMapping and NatEgress objects (the planner reuses what did not change),
 * renders only the Mappings that changed and the addresses they are on, and assembles the rest from
 * the parts it kept. The state is exactly renderIptables(model); it also tells the diff which chains
 * and entries can differ from the state it was derived from (diff.ts, StateDerivation).
 */
import {compareIpv4, type Ipv4} from '../../net/ipv4.js'
import type {NatEgress, NatInterface, NatMapping, NatModel} from '../../plan/model.js'
import {renderIpRules, renderRoutes} from '../../routing/render.js'
import {allBuckets, patchBuckets, sameAddresses} from '../address-buckets.js'
import {EgressOwners, egressDelta, withSortedChanges} from '../egress-owners.js'
import {sameObjects, type ListDelta} from '../model-delta.js'
import {PartsRenderer} from '../parts-renderer.js'
import {addressPart, mappingShare, type AddressPart, type MappingShare} from './address-parts.js'
import {entryDelta, rememberDerivation, type EntryDelta} from './diff.js'
import {egressPodsByInterface} from './egress.js'
import {ALLOW_SET, ENDPOINTS_SET, POSTROUTING_CHAIN, PREROUTING_CHAIN, SNAT_CHAIN, UNSERVED_SET} from './names.js'
import {checkInterface, renderFilter, renderIptables, renderMangle, renderNatHead, snatRule} from './render.js'
import {ALLOW_SET_TYPE, ENDPOINTS_SET_TYPE, canonicalEntries, egressSet, interfaceSet, setOptions, sortSets} from './sets.js'
import {rememberSummary, type StateSummary} from './summary.js'
import type {ChainState, IpsetState, IptablesState} from './types.js'

interface EgressPart {
  egress: readonly NatEgress[]
  interfaces: readonly NatInterface[]
  owners: EgressOwners
  /** Each interface's egress pods, sorted as set entries are; an interface without any is absent. */
  pods: Map<string, string[]>
  interfaceSets: Map<string, IpsetState>
  /** Each entry's SNAT rule. */
  rules: Map<NatEgress, string>
  sets: IpsetState[]
  snat: ChainState[]
  /** When derived from the last render's part: the entry changes of its interface sets since. */
  deltas?: Map<string, EntryDelta>
}

/** A big set and the runs of entries, one per address, it was assembled from. */
interface RunSet {
  set: IpsetState
  runs: string[][]
}

interface Rendered {
  model: NatModel
  state: IptablesState
  parts: Map<Ipv4, AddressPart>
  /** Parts by address in numeric order (chains) and in the string order of `address,` (set entries). */
  numeric: AddressPart[]
  textual: AddressPart[]
  /** Group chain and affinity list names, each with the Mapping that takes it. */
  claims: Map<string, MappingShare>
  egress: EgressPart
  allow: RunSet
  endpoints: RunSet
  unserved: RunSet | undefined
}

/** The iptables state of a daemon's models, from the parts of the last render where it can (parts-renderer.ts). */
export class IptablesRenderer extends PartsRenderer<IptablesState, MappingShare, Rendered> {
  private readonly egressSets = new WeakMap<NatEgress, IpsetState>()

  protected renderWhole(model: NatModel): IptablesState {
    return renderIptables(model)
  }

  protected renderShare(mapping: NatMapping): MappingShare {
    return mappingShare(mapping)
  }

  /** Assembles `model` from parts: the last render's patched where `from` has them, else all (kept Mappings' shares reused). */
  protected assemble(model: NatModel, from: {last: Rendered; delta: ListDelta<NatMapping>} | undefined): Rendered {
    const last = from?.last
    const delta = from?.delta
    for (const iface of model.interfaces) checkInterface(iface)
    const {parts, claims, affected} =
      last && delta
        ? patchBuckets(last, delta.removed.map((m) => this.kept(m)), delta.added.map((m) => this.share(m)), addressPart)
        : allBuckets(model.mappings.map((m) => this.share(m)), addressPart)
    this.stats.addressesAssembled = affected.size
    const kept = last !== undefined && sameAddresses(last.parts, parts, affected)
    const numeric = kept ? last.numeric.map((p) => parts.get(p.address)!) : [...parts.values()].sort((a, b) => compareIpv4(a.address, b.address))
    const textual = kept ? last.textual.map((p) => parts.get(p.address)!) : [...parts.values()].sort((a, b) => compareRunOrder(a.address, b.address))
    const direct = numeric.some((p) => p.direct)
    const egress = this.egressPart(model, last?.egress)

    const head = renderNatHead(model, numeric.map((p) => p.dispatch), egress.snat.length > 0)
    const allow = runSet(ALLOW_SET, ALLOW_SET_TYPE, textual.map((p) => p.allow), last?.allow)
    const endpoints = runSet(ENDPOINTS_SET, ENDPOINTS_SET_TYPE, textual.map((p) => p.endpoints), last?.endpoints)
    const unserved = direct ? runSet(UNSERVED_SET, ENDPOINTS_SET_TYPE, textual.map((p) => p.unserved), last?.unserved) : undefined
    const state: IptablesState = {
      tables: {
        mangle: renderMangle(model, egress.pods, direct),
        nat: {chains: head.chains.concat(egress.snat, numeric.map((p) => p.chain), ...numeric.map((p) => p.groupChains)), jumps: head.jumps},
        filter: renderFilter(direct, model.masqueradeTo),
      },
      sets: sortSets([allow.set, endpoints.set, ...(unserved ? [unserved.set] : []), ...egress.sets]),
      ipRules: renderIpRules(model),
      routes: renderRoutes(model),
    }
    rememberSummary(state, summaryOf(state, numeric))
    const rendered: Rendered = {model, state, parts, numeric, textual, claims, egress, allow, endpoints, unserved}
    if (last && delta) this.remember(rendered, last, affected, new Set(delta.removed), new Set(delta.added))
    return rendered
  }

  /** The egress sets and SNAT chain: the last ones, or those of the pods of changed entries changed, or all built again. */
  private egressPart(model: NatModel, last: EgressPart | undefined): EgressPart {
    if (last && sameObjects(model.egress, last.egress) && model.interfaces === last.interfaces) return last
    const delta = last && model.interfaces === last.interfaces ? egressDelta(last.egress, model.egress) : undefined
    let owners: EgressOwners
    let pods: Map<string, string[]>
    const moved = new Map<string, {remove: string[]; insert: string[]}>()
    if (last && delta) {
      // The index is the last render's, changed in place: a render that fails forgets it.
      owners = last.owners
      const before = new Map([...delta.pods].map((pod) => [pod, owners.owner(pod)?.interface]))
      owners.update(delta.removed, delta.added)
      const changes = moved
      const changesOf = (iface: string) => changes.get(iface) ?? changes.set(iface, {remove: [], insert: []}).get(iface)!
      for (const [pod, was] of before) {
        const now = owners.owner(pod)?.interface
        if (now === was) continue
        if (was !== undefined) changesOf(was).remove.push(pod)
        if (now !== undefined) changesOf(now).insert.push(pod)
      }
      pods = new Map(last.pods)
      for (const [iface, {remove, insert}] of changes) {
        const kept = withSortedChanges(last.pods.get(iface) ?? [], (pod) => pod, remove, insert)
        if (kept.length === 0) pods.delete(iface)
        else pods.set(iface, kept)
      }
    } else {
      owners = new EgressOwners(model.egress)
      pods = new Map([...egressPodsByInterface(model.egress)].map(([iface, owned]) => [iface, canonicalEntries([...owned.keys()])]))
    }
    const sets = model.egress.map((egress) => {
      let set = this.egressSets.get(egress)
      if (set === undefined) this.egressSets.set(egress, (set = egressSet(egress)))
      return set
    })
    const indexes = new Map(model.interfaces.map((iface) => [iface.name, iface.index]))
    const interfaceSets = new Map<string, IpsetState>()
    for (const [iface, entries] of pods) {
      const kept = last?.interfaceSets.get(iface)
      if (kept?.entries === entries) interfaceSets.set(iface, kept)
      else interfaceSets.set(iface, interfaceSet(indexes, iface, entries))
    }
    const snatRules = model.egress.map((egress) => last?.rules.get(egress) ?? snatRule(model, egress))
    const rules = new Map(model.egress.map((egress, i) => [egress, snatRules[i]!]))
    const snat = model.egress.length > 0 ? [{name: SNAT_CHAIN, rules: snatRules}] : []
    const deltas = new Map<string, EntryDelta>()
    for (const [iface, {remove, insert}] of moved) {
      const now = interfaceSets.get(iface)
      if (now && last?.interfaceSets.has(iface)) deltas.set(now.name, {add: insert.sort(), del: remove.sort()})
    }
    return {
      egress: model.egress,
      interfaces: model.interfaces,
      owners,
      pods,
      interfaceSets,
      rules,
      sets: [...sets, ...interfaceSets.values()],
      snat,
      ...(last && delta ? {deltas} : {}),
    }
  }

  /** Tells the diff what can differ between `rendered` and the last state: the chains and entries of the addresses assembled again. */
  private remember(rendered: Rendered, last: Rendered, affected: ReadonlyMap<Ipv4, unknown>, removed: Set<NatMapping>, added: Set<NatMapping>): void {
    const addresses = [...affected.keys()]
    const numeric = [...addresses].sort(compareIpv4)
    const textual = [...addresses].sort(compareRunOrder)
    const natChains = (state: IptablesState, parts: ReadonlyMap<Ipv4, AddressPart>, mappings: Set<NatMapping>): ChainState[] => {
      const chains = state.tables.nat.chains.slice(0, 3).filter((c) => c.name === PREROUTING_CHAIN || c.name === POSTROUTING_CHAIN || c.name === SNAT_CHAIN)
      const touched = numeric.flatMap((a) => parts.get(a) ?? [])
      chains.push(...touched.map((p) => p.chain))
      const seen = new Set<ChainState>()
      for (const part of touched) {
        for (const {chain, share} of part.groups) {
          if (!mappings.has(share.mapping) || seen.has(chain)) continue
          seen.add(chain)
          chains.push(chain)
        }
      }
      return chains
    }
    const sets = new Map<string, EntryDelta>()
    const runDelta = (name: string, runs: (part: AddressPart) => string[]) => {
      const add: string[] = []
      const del: string[] = []
      for (const address of textual) {
        const now = rendered.parts.get(address)
        const before = last.parts.get(address)
        const delta = entryDelta(now ? runs(now) : [], before ? runs(before) : [])
        add.push(...delta.add)
        del.push(...delta.del)
      }
      sets.set(name, {add, del})
    }
    runDelta(ALLOW_SET, (p) => p.allow)
    runDelta(ENDPOINTS_SET, (p) => p.endpoints)
    if (rendered.unserved && last.unserved) runDelta(UNSERVED_SET, (p) => p.unserved)
    if (rendered.egress !== last.egress) for (const [name, delta] of rendered.egress.deltas ?? []) sets.set(name, delta)
    rememberDerivation(rendered.state, {
      base: last.state,
      nat: {desired: natChains(rendered.state, rendered.parts, added), actual: natChains(last.state, last.parts, removed)},
      sets,
    })
  }
}

/** The rules of a state whose address and group chains are those of `parts`. */
function ruleCount(state: IptablesState, parts: readonly AddressPart[]): number {
  const {mangle, nat, filter} = state.tables
  const count = (chains: readonly ChainState[]) => chains.reduce((n, c) => n + c.rules.length, 0)
  const natHead = nat.chains.slice(0, nat.chains.length - parts.length - parts.reduce((n, p) => n + p.groupChains.length, 0))
  return (
    count(mangle.chains) + count(filter.chains) + count(natHead) + parts.reduce((n, p) => n + p.rules, 0) + mangle.jumps.length + nat.jumps.length + filter.jumps.length
  )
}

/**
 * What a state whose address and group chains are those of `parts` holds. Made out here: a closure
 * made in a render would keep everything that render's scope holds, the last render with it.
 */
function summaryOf(state: IptablesState, parts: readonly AddressPart[]): StateSummary {
  return {
    rules: ruleCount(state, parts),
    mappings() {
      const mappings = new Set<string>()
      for (const part of parts) for (const mapping of part.mappings) mappings.add(mapping)
      return mappings
    },
  }
}

/** The order of an address's run among the entries of a set sorted as plain strings. */
function compareRunOrder(a: Ipv4, b: Ipv4): number {
  const x = `${a},`
  const y = `${b},`
  return x < y ? -1 : x > y ? 1 : 0
}

/** A set of the runs' entries: the last one when every run is the same, else one built without sorting again. */
function runSet(name: string, type: string, runs: string[][], last: RunSet | undefined): RunSet {
  if (last && last.set.name === name && sameObjects(runs, last.runs)) return last
  const entries = ([] as string[]).concat(...runs)
  return {set: {name, type, options: setOptions(entries.length), entries}, runs}
}
