/** What each Mapping amounts to on this host, for status and explain alike: verdict, Service, endpoints, and whether the kernel has its rules. */
import {endpointName, type StatePart} from '../backend/parts.js'
import type {MappingResource, ValidMappingSpec} from '../mapping/types.js'
import {validateMapping} from '../mapping/validate.js'
import type {MappingVerdict, NatGroup, NatMapping} from '../plan/model.js'
import {namesOf} from '../plan/order.js'
import {indexPodIPs, type PodIPLookup} from '../plan/pods.js'
import {unservedMessage} from '../sync/status.js'
import {driftOf, driftedMappings, type Drift} from './drift.js'
import type {Inspection} from './inspection.js'

/**
 * - configured: programmed, and the kernel holds exactly its rules
 * - invalid: not programmed; `reason` says why
 * - deleting: being deleted (a deletionTimestamp, finalizers hold it), so no longer programmed; `reason` says since when
 * - drifted: the kernel lacks some of its rules or set entries, or holds some it should not
 * - faulty: valid, but this host cannot serve some of its addresses (an interface without a usable
 *   gateway, a forward chain that drops); `reason` says which and why
 * - not-local: valid, but none of its addresses is on this host's external interfaces
 * - unverified: programmed as far as the desired state goes; the kernel could not be read
 * - stale: no longer in the source (or no longer valid here), yet the kernel still holds rules for it
 */
export type MappingState = 'configured' | 'invalid' | 'deleting' | 'drifted' | 'faulty' | 'not-local' | 'unverified' | 'stale'

/** One external endpoint's DNAT, as desired, and what the kernel counted for it. */
export interface EndpointRule {
  address: string
  protocol: string
  port: number
  /** `198.19.100.10:8080`, or in mode direct the group: `group default/web tcp/80` */
  target: string
  /** null when the kernel could not be read. */
  inKernel: boolean | null
  packets: number | null
  bytes: number | null
}

export interface MappingFacts {
  namespace: string
  name: string
  state: MappingState
  /** Why it is invalid, drifted, faulty or stale, or (mode direct) which ports have no endpoint to serve; null otherwise. */
  reason: string | null
  /** null when the spec is not valid. */
  mode: 'service' | 'direct' | null
  service: string | null
  serviceVIP: string | null
  /** The pods in use: the Service's ready endpoints; in mode direct, the members of its groups. */
  endpoints: string[]
  /** Mode direct on this host: one per Service port, with the endpoints new connections are spread over; empty otherwise. */
  groups: GroupFacts[]
  /** Addresses programmed on this host. */
  addresses: string[]
  notLocalAddresses: string[]
  allowedSources: string[]
  ports: {protocol: string; port: number; servicePort: number}[]
  rules: EndpointRule[]
  /** Sums over `rules`; null when the kernel could not be read. */
  packets: number | null
  bytes: number | null
  /** Parts as `where: text`. */
  drift: {missing: string[]; unexpected: string[]}
}

/** A mode-direct endpoint group as status and explain tell it. */
export interface GroupFacts {
  /** `namespace/name protocol/servicePort` */
  id: string
  /** `ip:port`, in order. */
  members: string[]
  /** No endpoint is ready: the members are serving terminating ones. */
  terminating: boolean
  affinitySeconds: number | null
}

/** The group as status and explain tell it. */
export function groupFacts(group: NatGroup): GroupFacts {
  return {id: group.id, members: group.members.map((m) => `${m.ip}:${m.port}`), terminating: group.terminating, affinitySeconds: group.affinitySeconds ?? null}
}

/** What factsOf looks up for every Mapping, indexed once: at 10,000 Mappings a search per Mapping took `status` 50 s. */
interface FactsIndex {
  podIPsOf: PodIPLookup
  /** By `namespace/name`. */
  models: Map<string, NatMapping>
  /** By `namespace/name`, the first of the snapshot's objects of that name, as the planner keeps one. */
  resources: Map<string, MappingResource>
  /** DNAT rules and DNAT map entries by the endpoint they implement. */
  dnat: Map<string, StatePart[]>
  missing: Set<StatePart>
  /** The drift that names each Mapping, in drift order. */
  drift: Map<string, Drift>
}

function factsIndex(inspection: Inspection<unknown>): FactsIndex {
  const models = new Map(inspection.plan.model.mappings.map((m) => [`${m.namespace}/${m.name}`, m]))
  const resources = new Map<string, MappingResource>()
  for (const resource of inspection.snapshot.mappings) {
    const {namespace, name} = namesOf(resource)
    if (!resources.has(`${namespace}/${name}`)) resources.set(`${namespace}/${name}`, resource)
  }
  const dnat = new Map<string, StatePart[]>()
  for (const part of inspection.desiredParts) {
    if ((part.kind !== 'rule' && part.kind !== 'map-entry') || part.endpoint === undefined) continue
    const parts = dnat.get(part.endpoint) ?? []
    dnat.set(part.endpoint, parts)
    parts.push(part)
  }
  const drift = new Map<string, Drift>()
  for (const side of ['missing', 'unexpected'] as const) {
    for (const part of inspection.drift?.[side] ?? []) {
      for (const id of part.mappings) {
        const mine = drift.get(id) ?? {missing: [], unexpected: []}
        drift.set(id, mine)
        mine[side].push(part)
      }
    }
  }
  return {podIPsOf: indexPodIPs(inspection.snapshot.endpointSlices), models, resources, dnat, missing: new Set(inspection.drift?.missing ?? []), drift}
}

/** Facts about every Mapping of the snapshot, and about Mappings the kernel still serves but the source no longer names. */
export function mappingFacts(inspection: Inspection<unknown>): MappingFacts[] {
  const index = factsIndex(inspection)
  const facts = inspection.plan.verdicts.map((verdict) => factsOf(inspection, index, verdict))
  const known = new Set(facts.map((f) => `${f.namespace}/${f.name}`))
  const stale = inspection.drift ? driftedMappings(inspection.drift).filter((id) => !known.has(id)) : []
  return [...facts, ...stale.map((id) => staleFacts(inspection, id))]
}

function factsOf(inspection: Inspection<unknown>, index: FactsIndex, verdict: MappingVerdict): MappingFacts {
  const id = `${verdict.namespace}/${verdict.name}`
  const spec = validSpec(inspection, index, verdict)
  const model = index.models.get(id)
  const drift = inspection.drift ? (index.drift.get(id) ?? {missing: [], unexpected: []}) : undefined
  const rules = (model?.endpoints ?? []).map((e) => {
    const target = e.group ? `group ${e.group.id}` : `${e.targetIP}:${e.targetPort}`
    return endpointRule(inspection, index, id, endpointName(e.address, e.protocol, e.port), {address: e.address, protocol: e.protocol, port: e.port, target})
  })
  // A Mapping programmed in mode direct uses its groups' members; elsewhere the Service's ready pods tell what it would use.
  const podIPs = model?.groups ? model.podIPs : spec ? index.podIPsOf(verdict.namespace, spec.serviceName) : []
  const drifted = drift !== undefined && (drift.missing.length > 0 || drift.unexpected.length > 0)
  const faults = Object.entries(verdict.faults ?? {})
  const state: MappingState = verdict.deleting !== undefined
    ? 'deleting'
    : !verdict.valid
      ? 'invalid'
      : drifted
        ? 'drifted'
        : faults.length > 0
          ? 'faulty'
          : !model
            ? 'not-local'
            : inspection.kernel.readable
              ? 'configured'
              : 'unverified'
  const faultReason = faults.map(([address, reason]) => `${address} not served: ${reason}`).join('; ')
  return {
    namespace: verdict.namespace,
    name: verdict.name,
    state,
    reason: !verdict.valid ? verdict.invalid : drifted ? driftReason(drift!) : faults.length > 0 ? faultReason : directReason(verdict, model),
    mode: spec?.mode ?? null,
    service: spec?.serviceName ?? null,
    serviceVIP: verdict.serviceVIP ?? null,
    endpoints: [...podIPs],
    groups: (model?.groups ?? []).map(groupFacts),
    addresses: model ? model.addresses.map((a) => a.address) : [],
    notLocalAddresses: [...verdict.notLocalAddresses],
    allowedSources: spec ? [...spec.allowedSources] : [],
    ports: spec ? spec.ports.map((p) => ({protocol: p.protocol, port: p.port, servicePort: p.servicePort})) : [],
    rules,
    ...totals(rules),
    drift: driftLines(drift),
  }
}

/** A Mapping only the kernel knows: its rules stayed after it was deleted, or after it stopped being valid here. */
function staleFacts(inspection: Inspection<unknown>, id: string): MappingFacts {
  const [namespace = '', name = ''] = id.split('/')
  const drift = driftOf(inspection.drift!, id)
  return {
    namespace,
    name,
    state: 'stale',
    reason: `not a Mapping of the source, yet the kernel holds ${drift.unexpected.length} of its rules and set entries`,
    mode: null,
    service: null,
    serviceVIP: null,
    endpoints: [],
    groups: [],
    addresses: [],
    notLocalAddresses: [],
    allowedSources: [],
    ports: [],
    rules: [],
    packets: null,
    bytes: null,
    drift: driftLines(drift),
  }
}

/** Mode direct: the ports that refuse new connections for want of endpoints, or those served by terminating ones. */
function directReason(verdict: MappingVerdict, model: NatMapping | undefined): string | null {
  if (verdict.unservedPorts?.length) return unservedMessage(verdict.unservedPorts)
  const terminating = (model?.groups ?? []).filter((g) => g.terminating).map((g) => g.id.slice(g.id.indexOf(' ') + 1))
  return terminating.length > 0 ? `no ready endpoint for Service port ${terminating.join(', ')}; new connections go to serving terminating ones` : null
}

function validSpec(inspection: Inspection<unknown>, index: FactsIndex, verdict: MappingVerdict): ValidMappingSpec | undefined {
  if (!verdict.valid) return undefined
  const resource = index.resources.get(`${verdict.namespace}/${verdict.name}`)
  const validation = resource && validateMapping(resource, inspection.settings.plan)
  return validation?.ok ? validation.spec : undefined
}

function endpointRule(
  inspection: Inspection<unknown>,
  index: FactsIndex,
  id: string,
  endpoint: string,
  base: Omit<EndpointRule, 'inKernel' | 'packets' | 'bytes'>,
): EndpointRule {
  const {kernel} = inspection
  // What translates the endpoint: a DNAT rule (iptables) or an element of the DNAT map (nftables).
  const dnat = index.dnat.get(endpoint)?.find((p) => p.mappings.includes(id))
  if (!kernel.readable || !dnat) return {...base, inKernel: null, packets: null, bytes: null}
  const inKernel = !index.missing.has(dnat)
  // Without a counter key the kernel counts nothing for it: unknown, not zero.
  if (dnat.counterKey === undefined) return {...base, inKernel, packets: null, bytes: null}
  const counter = inKernel ? kernel.counters.get(dnat.counterKey) : undefined
  return {...base, inKernel, packets: counter?.packets ?? (inKernel ? 0 : null), bytes: counter?.bytes ?? (inKernel ? 0 : null)}
}

function totals(rules: EndpointRule[]): {packets: number | null; bytes: number | null} {
  const counted = rules.filter((r) => r.packets !== null)
  if (counted.length === 0) return {packets: null, bytes: null}
  return {packets: counted.reduce((n, r) => n + r.packets!, 0), bytes: counted.reduce((n, r) => n + r.bytes!, 0)}
}

function driftReason(drift: Drift): string {
  const said: string[] = []
  if (drift.missing.length > 0) said.push(`the kernel lacks ${drift.missing.length} of its rules and set entries`)
  if (drift.unexpected.length > 0) said.push(`the kernel holds ${drift.unexpected.length} it should not`)
  return `${said.join('; ')}; the next sync repairs it`
}

/** Drift as `where: text` lines; none when there is no drift to tell (the kernel could not be read). */
export function driftLines(drift: Drift | undefined): {missing: string[]; unexpected: string[]} {
  return {missing: (drift?.missing ?? []).map(partLine), unexpected: (drift?.unexpected ?? []).map(partLine)}
}

/** `where: text`, the one-line form of a part. */
function partLine(part: StatePart): string {
  return `${part.where}: ${part.text}`
}
