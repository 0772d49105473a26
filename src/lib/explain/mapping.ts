/** What one Mapping amounts to on this host, with every rule and set entry that implements it checked against the kernel. */
import type {Counter, StatePart} from '../backend/parts.js'
import {driftOf, sharedDrift} from '../inspect/drift.js'
import {driftLines, mappingFacts, type MappingFacts} from '../inspect/facts.js'
import {kernelSummary, type Inspection, type KernelSummary} from '../inspect/inspection.js'
import type {MemberRoute} from './routes.js'

/** A part of the desired or the kernel's state, and whether the other side agrees. */
export interface PartReport {
  kind: string
  where: string
  text: string
  /** null when the kernel could not be read. */
  inKernel: boolean | null
  packets: number | null
  bytes: number | null
}

export interface MappingExplanation {
  mapping: MappingFacts
  kernel: KernelSummary
  /** What implements the Mapping, as rendered, each checked against the kernel. */
  parts: PartReport[]
  /** What the kernel holds for the Mapping that is not desired. */
  unexpected: PartReport[]
  /** Drift in what every Mapping relies on (jumps, marks, reply routing). */
  shared: {missing: string[]; unexpected: string[]}
  /** Mode direct: this host's route to each member of its groups; null when not looked up (another mode, no member, or the lookup failed). */
  routes: MemberRoute[] | null
  /** Why the routes could not be looked up; null otherwise. */
  routeError: string | null
}

/** The Mapping asked about is not in the source. */
export class MappingNotFoundError extends Error {
  override name = 'MappingNotFoundError'
}

/** Explains one Mapping (`namespace/name`); fails naming the Mappings that do exist when it is unknown. */
export function explainMapping(inspection: Inspection<unknown>, id: string): MappingExplanation {
  const all = mappingFacts(inspection)
  const facts = all.find((f) => `${f.namespace}/${f.name}` === id)
  if (!facts) {
    const names = all.map((f) => `${f.namespace}/${f.name}`)
    const [namespace] = id.split('/')
    const near = names.filter((n) => n.startsWith(`${namespace}/`))
    throw new MappingNotFoundError(`mapping ${id} not found${near.length > 0 ? `; in namespace ${namespace} there are: ${near.join(', ')}` : names.length > 0 ? `; known Mappings: ${names.join(', ')}` : '; the source holds no Mappings'}`)
  }
  const {kernel, drift} = inspection
  const counters = kernel.readable ? kernel.counters : undefined
  const mine = (part: StatePart) => part.mappings.includes(id)
  const missing = new Set(drift?.missing ?? [])
  return {
    mapping: facts,
    kernel: kernelSummary(kernel),
    parts: inspection.desiredParts.filter(mine).map((part) => partReport(part, drift ? !missing.has(part) : null, counters)),
    unexpected: (drift ? driftOf(drift, id).unexpected : []).map((part) => partReport(part, true, counters)),
    shared: driftLines(drift && sharedDrift(drift)),
    routes: null,
    routeError: null,
  }
}

function partReport(part: StatePart, inKernel: boolean | null, counters: Map<string, Counter> | undefined): PartReport {
  const counter = inKernel && part.counterKey && counters ? (counters.get(part.counterKey) ?? {packets: 0, bytes: 0}) : undefined
  return {kind: part.kind, where: part.where, text: part.text, inKernel, packets: counter?.packets ?? null, bytes: counter?.bytes ?? null}
}

