/** The iptables backend's state as parts: rules by comment and endpoint, set entries by address and port. */
import type {NatModel} from '../../plan/model.js'
import {endpointName, type StatePart} from '../parts.js'
import {routingParts} from '../routing-parts.js'
import {setOptionsKey} from './diff.js'
import {egressPodsByInterface} from './egress.js'
import {ALLOW_SET, ENDPOINTS_SET, UNSERVED_SET, addressChainName, egressInterfaceSetName, egressSetName, groupChainName, isGroupChainName} from './names.js'
import {mappingComment} from './render.js'
import {parseRule, type Match} from './rule.js'
import {TABLES, type IptablesState} from './types.js'

/** Who depends on which endpoint and address, learnt from the desired model and from the state's own comments. */
class Owners {
  readonly byEndpoint = new Map<string, string>()
  readonly byAddress = new Map<string, Set<string>>()
  readonly byComment = new Map<string, string>()
  readonly byEgressSet = new Map<string, string[]>()
  /** `SNM-EGRESS-<index> <pod>`: the Mappings of the egress that decided the pod's interface. */
  readonly byEgressEntry = new Map<string, string[]>()
  readonly addressOfChain = new Map<string, string>()
  /** Mode direct: the Mapping each group chain serves. */
  readonly byChain = new Map<string, string>()

  constructor(model: NatModel) {
    for (const mapping of model.mappings) {
      const id = `${mapping.namespace}/${mapping.name}`
      for (const e of mapping.endpoints) {
        this.addressOfChain.set(addressChainName(e.address), e.address)
        this.endpoint(e.address, endpointName(e.address, e.protocol, e.port), id)
        this.byComment.set(mappingComment(mapping.namespace, mapping.name, e), id)
        if (e.group === undefined) continue
        this.byChain.set(groupChainName(e.group.id), id)
      }
    }
    for (const egress of model.egress) this.byEgressSet.set(egressSetName(egress.address), egress.mappings)
    const indexes = new Map(model.interfaces.map((iface) => [iface.name, iface.index]))
    for (const [iface, pods] of egressPodsByInterface(model.egress)) {
      const index = indexes.get(iface)
      if (index === undefined) continue
      for (const [pod, egress] of pods) this.byEgressEntry.set(`${egressInterfaceSetName(index)} ${pod}`, egress.mappings)
    }
  }

  endpoint(address: string, endpoint: string, mapping: string): void {
    if (!this.byEndpoint.has(endpoint)) this.byEndpoint.set(endpoint, mapping)
    const set = this.byAddress.get(address) ?? new Set()
    set.add(mapping)
    this.byAddress.set(address, set)
  }

  /** The Mapping a DNAT comment names; a comment cut to iptables' limit is recognised through the model. */
  ofComment(text: string): string | undefined {
    return this.byComment.get(text) ?? /^(\S+\/\S+) (?:tcp|udp)\/\d+$/.exec(text)?.[1]
  }
}

interface DnatRule {
  address?: string
  endpoint?: string
  mapping?: string
}

/** Parts of an iptables-backend state; rules a renderer would not emit become unattributed parts. */
export function iptablesParts(state: IptablesState, model: NatModel): StatePart[] {
  const owners = new Owners(model)
  const dnat = learnDnatRules(state, owners)
  const parts: StatePart[] = []
  for (const table of TABLES) {
    const {chains, jumps} = state.tables[table]
    for (const line of jumps) parts.push({kind: 'jump', where: `${table} ${line.split(' ')[1]}`, text: line, mappings: [], counterKey: `${table} ${line}`})
    for (const chain of chains) {
      // A chain serves particular Mappings only when each of its rules does (an address chain);
      // a chain with any shared rule (SNM-PREROUTING) serves every Mapping. A group chain serves
      // its Mapping, even empty.
      const owner = table === 'nat' ? owners.byChain.get(chain.name) : undefined
      const chainMappings = new Set<string>(owner === undefined ? [] : [owner])
      let shared = chain.rules.length === 0 && owner === undefined
      for (const line of chain.rules) {
        const rule = owner === undefined ? (dnat.get(line) ?? dispatchRule(line, owners)) : {mapping: owner}
        const mappings = rule.mapping ? [rule.mapping] : [...(rule.address ? (owners.byAddress.get(rule.address) ?? []) : [])].sort()
        if (mappings.length === 0) shared = true
        for (const m of mappings) chainMappings.add(m)
        parts.push({
          kind: 'rule',
          where: `${table} ${chain.name}`,
          text: line,
          mappings,
          ...(rule.endpoint ? {endpoint: rule.endpoint} : {}),
          counterKey: `${table} ${line}`,
        })
      }
      parts.push({kind: 'chain', where: table, text: `:${chain.name}`, mappings: shared ? [] : [...chainMappings].sort()})
    }
  }
  for (const set of state.sets) {
    const where = `set ${set.name}`
    parts.push({kind: 'set', where, text: `${set.type} ${setOptionsKey(set.options)}`, mappings: []})
    const entryPart = setEntryParts(set.name, where, owners)
    for (const entry of set.entries) parts.push(entryPart(entry))
  }
  return [...parts, ...routingParts(state)]
}

/**
 * DNAT rules and jumps to group chains by line, and the endpoints they reveal (a stale Mapping is
 * known only by its comments); a group chain takes the Mapping of the endpoint reaching it.
 */
function learnDnatRules(state: IptablesState, owners: Owners): Map<string, DnatRule> {
  const rules = new Map<string, DnatRule>()
  for (const chain of state.tables.nat.chains) {
    for (const line of chain.rules) {
      const rule = tryParse(line)
      if (!rule) continue
      const dst = rule.matches.find((m): m is Extract<Match, {kind: 'dst'}> => m.kind === 'dst')
      if (rule.target.kind === 'jump' && dst) owners.addressOfChain.set(rule.target.chain, dst.cidr.replace(/\/32$/, ''))
    }
  }
  for (const chain of state.tables.nat.chains) {
    const address = owners.addressOfChain.get(chain.name)
    for (const line of chain.rules) {
      const rule = tryParse(line)
      const toGroup = rule?.target.kind === 'jump' && isGroupChainName(rule.target.chain) ? rule.target.chain : undefined
      if (!rule || (rule.target.kind !== 'DNAT' && toGroup === undefined)) continue
      const dport = rule.matches.find((m): m is Extract<Match, {kind: 'dport'}> => m.kind === 'dport')
      const comment = rule.matches.find((m): m is Extract<Match, {kind: 'comment'}> => m.kind === 'comment')
      const endpoint = address && dport ? endpointName(address, dport.protocol, dport.port) : undefined
      const mapping = (comment && owners.ofComment(comment.text)) ?? (endpoint ? owners.byEndpoint.get(endpoint) : undefined)
      if (endpoint && mapping && address) owners.endpoint(address, endpoint, mapping)
      if (toGroup !== undefined && mapping !== undefined && !owners.byChain.has(toGroup)) owners.byChain.set(toGroup, mapping)
      rules.set(line, {...(address ? {address} : {}), ...(endpoint ? {endpoint} : {}), ...(mapping ? {mapping} : {})})
    }
  }
  return rules
}

/** A rule sending one address to its chain serves every Mapping on that address. */
function dispatchRule(line: string, owners: Owners): DnatRule {
  const rule = tryParse(line)
  if (rule?.target.kind !== 'jump') return {}
  const address = owners.addressOfChain.get(rule.target.chain)
  return address ? {address} : {}
}

/**
 * Makes the parts of one set's entries. An allow-list or endpoint entry belongs to the Mapping of
 * the endpoint it starts with; what that is, is worked out once per endpoint, not per entry (the
 * allow list holds one entry per endpoint and source: 80,000 at 10,000 Mappings).
 */
function setEntryParts(set: string, where: string, owners: Owners): (entry: string) => StatePart {
  const NONE: string[] = []
  if (set === ALLOW_SET || set === ENDPOINTS_SET || set === UNSERVED_SET) {
    const byPrefix = new Map<string, {endpoint: string; mappings: string[]}>()
    return (text) => {
      // `198.18.0.10,tcp:80` and what follows it.
      const comma = text.indexOf(',', text.indexOf(',') + 1)
      const prefix = comma === -1 ? text : text.slice(0, comma)
      let owner = byPrefix.get(prefix)
      if (owner === undefined) {
        const match = /^([^,]+),(tcp|udp):(\d+)$/.exec(prefix)
        if (!match) return {kind: 'set-entry', where, text, mappings: NONE}
        const endpoint = endpointName(match[1]!, match[2]!, Number(match[3]))
        const mapping = owners.byEndpoint.get(endpoint)
        byPrefix.set(prefix, (owner = {endpoint, mappings: mapping ? [mapping] : NONE}))
      }
      return {kind: 'set-entry', where, text, mappings: owner.mappings, endpoint: owner.endpoint}
    }
  }
  const setMappings = owners.byEgressSet.get(set)
  return (text) => ({kind: 'set-entry', where, text, mappings: [...(setMappings ?? owners.byEgressEntry.get(`${set} ${text}`) ?? NONE)]})
}

// A rule someone added by hand to an owned chain need not have a shape the renderer emits.
function tryParse(line: string): ReturnType<typeof parseRule> | undefined {
  try {
    return parseRule(line)
  } catch {
    return undefined
  }
}
