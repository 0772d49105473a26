/**
 * The nftables backend's state as parts: chains and rules serve every Mapping alike (mode direct's
 * pick chains too), except the group and member chains and affinity sets of a group with affinity,
 * which belong to the Mapping of their group;
 * map and set elements belong to the Mapping whose endpoint or pods they carry.
 */
import type {NatGroup, NatModel} from '../../plan/model.js'
import {endpointName, type StatePart} from '../parts.js'
import {routingParts} from '../routing-parts.js'
import {
  DIRECT_ENDPOINTS_SET,
  DIRECT_MAP,
  EGRESS_SNAT_MAP,
  ENDPOINTS_MAP,
  TABLE,
  TARGETS_MAP,
  UNSERVED_SET,
  affinitySetName,
  egressSetName,
  groupChainName,
  isAllowedSet,
  memberChainName,
} from './names.js'
import {chainLines, elementParts, setDeclaration} from './syntax.js'
import type {NftElement, NftSet, NftState} from './types.js'

const MAPPING_NAME = /^[^\s/]+\/[^\s/]+$/

/** Who owns each endpoint and each egress pod in the desired model; element comments name the rest. */
class Owners {
  readonly byEndpoint = new Map<string, string>()
  /** `egress_<index> <pod>` and `egress_snat <interface> <pod>`, as the renderer resolves them. */
  readonly byEgressKey = new Map<string, string[]>()
  /** Group and member chains and affinity sets, by name. */
  readonly byDirectName = new Map<string, string>()

  constructor(model: NatModel) {
    for (const mapping of model.mappings) {
      const id = `${mapping.namespace}/${mapping.name}`
      for (const e of mapping.endpoints) {
        this.byEndpoint.set(endpointName(e.address, e.protocol, e.port), id)
        if (e.group !== undefined) this.addGroup(e.group, id)
      }
    }
    const index = new Map(model.interfaces.map((iface) => [iface.name, iface.index]))
    for (const egress of model.egress) {
      const setName = index.has(egress.interface) ? egressSetName(index.get(egress.interface)!) : undefined
      for (const pod of egress.podIPs) {
        // The last egress naming a pod marks its connections; the first per interface picks the address.
        if (setName) this.byEgressKey.set(`${setName} ${pod}`, egress.mappings)
        const snat = `${EGRESS_SNAT_MAP} ${egress.interface} ${pod}`
        if (!this.byEgressKey.has(snat)) this.byEgressKey.set(snat, egress.mappings)
      }
    }
  }

  /** Only a group with affinity has chains and sets of its own; the pick chains serve every Mapping. */
  private addGroup(group: NatGroup, mapping: string): void {
    const seconds = group.affinitySeconds
    if (seconds === undefined) return
    this.byDirectName.set(groupChainName(group.id), mapping)
    for (const member of group.members) {
      this.byDirectName.set(memberChainName(group.id, member), mapping)
      this.byDirectName.set(affinitySetName(group.id, member, seconds), mapping)
    }
  }

  /** The Mapping a group or member chain or affinity set serves; none for any other (or a stale one). */
  directOwner(name: string): string[] {
    const mapping = this.byDirectName.get(name)
    return mapping === undefined ? [] : [mapping]
  }
}

/** Sets and maps whose elements are keyed by an external endpoint first: address, protocol, port. */
const ENDPOINT_KEYED = new Set([ENDPOINTS_MAP, DIRECT_MAP, DIRECT_ENDPOINTS_SET, TARGETS_MAP, UNSERVED_SET])

/** Parts of an nftables-backend state; its rules keep no counters, so no part has a counter key. */
export function nftParts(state: NftState, model: NatModel): StatePart[] {
  const owners = new Owners(model)
  const parts: StatePart[] = []
  const {table} = state
  if (table) {
    for (const chain of table.chains) {
      const [header, ...rules] = chainLines(chain)
      const mappings = owners.directOwner(chain.name)
      parts.push({kind: 'chain', where: `table ${TABLE}`, text: header!, mappings})
      for (const rule of rules) parts.push({kind: 'rule', where: `chain ${chain.name}`, text: rule, mappings: [...mappings]})
    }
    for (const set of table.sets) {
      parts.push({kind: 'set', where: `table ${TABLE}`, text: setDeclaration(set), mappings: owners.directOwner(set.name)})
      for (const element of set.elements) parts.push(elementPart(set, element, owners))
    }
  }
  return [...parts, ...routingParts(state)]
}

function elementPart(set: NftSet, element: NftElement, owners: Owners): StatePart {
  const kind = set.dataType ? 'map-entry' : 'set-entry'
  const base = {kind, where: `${set.dataType ? 'map' : 'set'} ${set.name}`, text: element} as const
  const {key, comment} = elementParts(set, element)
  if (ENDPOINT_KEYED.has(set.name) || isAllowedSet(set.name)) {
    const [address, protocol, port] = key
    const endpoint = endpointName(address ?? '', protocol ?? '', Number(port))
    const mapping = owners.byEndpoint.get(endpoint) ?? commentedMapping(comment)
    return {...base, mappings: mapping ? [mapping] : [], endpoint}
  }
  const mappings = owners.byEgressKey.get(`${set.name} ${key.join(' ')}`) ?? commentedMappings(comment)
  return {...base, mappings: [...mappings]}
}

/** `default/web tcp/80` or `default/web`: the Mapping an endpoint's element was written for. */
function commentedMapping(comment: string | undefined): string | undefined {
  const name = comment?.replace(/ (?:tcp|udp)\/\d+$/, '')
  return name !== undefined && MAPPING_NAME.test(name) ? name : undefined
}

/** An egress element's comment lists its Mappings; one cut at nft's limit loses its last name. */
function commentedMappings(comment: string | undefined): string[] {
  return (comment ?? '').split(' ').filter((word) => MAPPING_NAME.test(word))
}
