/**
 * The nftables backend's state as parts: chains and rules serve every Mapping alike; map and set
 * elements belong to the Mapping whose endpoint or pods they carry.
 */
import type {NatModel} from '../../plan/model.js'
import {endpointName, type StatePart} from '../parts.js'
import {routingParts} from '../routing-parts.js'
import {EGRESS_SNAT_MAP, ENDPOINTS_MAP, TABLE, egressSetName, isAllowedSet} from './names.js'
import {chainLines, printElement, setDeclaration} from './syntax.js'
import type {NftElement, NftSet, NftState} from './types.js'

const MAPPING_NAME = /^[^\s/]+\/[^\s/]+$/

/** Who owns each endpoint and each egress pod in the desired model; element comments name the rest. */
class Owners {
  readonly byEndpoint = new Map<string, string>()
  /** `egress_<index> <pod>` and `egress_snat <interface> <pod>`, as the renderer resolves them. */
  readonly byEgressKey = new Map<string, string[]>()

  constructor(model: NatModel) {
    for (const mapping of model.mappings) {
      for (const e of mapping.endpoints) this.byEndpoint.set(endpointName(e.address, e.protocol, e.port), `${mapping.namespace}/${mapping.name}`)
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
}

/** Parts of an nftables-backend state; its rules keep no counters, so no part has a counter key. */
export function nftParts(state: NftState, model: NatModel): StatePart[] {
  const owners = new Owners(model)
  const parts: StatePart[] = []
  const {table} = state
  if (table) {
    for (const chain of table.chains) {
      const [header, ...rules] = chainLines(chain)
      parts.push({kind: 'chain', where: `table ${TABLE}`, text: header!, mappings: []})
      for (const rule of rules) parts.push({kind: 'rule', where: `chain ${chain.name}`, text: rule, mappings: []})
    }
    for (const set of table.sets) {
      parts.push({kind: 'set', where: `table ${TABLE}`, text: setDeclaration(set), mappings: []})
      for (const element of set.elements) parts.push(elementPart(set, element, owners))
    }
  }
  return [...parts, ...routingParts(state)]
}

function elementPart(set: NftSet, element: NftElement, owners: Owners): StatePart {
  const kind = set.dataType ? 'map-entry' : 'set-entry'
  const base = {kind, where: `${set.dataType ? 'map' : 'set'} ${set.name}`, text: printElement(set, element)} as const
  if (set.name === ENDPOINTS_MAP || isAllowedSet(set.name)) {
    const [address, protocol, port] = element.key
    const endpoint = endpointName(address ?? '', protocol ?? '', Number(port))
    const mapping = owners.byEndpoint.get(endpoint) ?? commentedMapping(element.comment)
    return {...base, mappings: mapping ? [mapping] : [], endpoint}
  }
  const mappings = owners.byEgressKey.get(`${set.name} ${element.key.join(' ')}`) ?? commentedMappings(element.comment)
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
