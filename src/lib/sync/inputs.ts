/**
 * What a pass depends on in a snapshot: every Mapping's spec and identity, and the Services and
 * EndpointSlices that Mappings name. A cluster's other Services and EndpointSlices change all the
 * time (every rollout, every scaled Deployment), and every status smartnat writes comes back as a
 * changed Mapping; none of that can change a rule or a status, so the watch loop skips a pass whose
 * inputs are those of the last pass.
 */
import {SERVICE_NAME_LABEL, type MappingResource} from '../mapping/types.js'
import type {Snapshot} from '../plan/model.js'

export interface PassInputs {
  mappings: readonly MappingResource[]
  /** Per `namespace/serviceName` a Mapping names: the Services and EndpointSlices found under it, in snapshot order. */
  named: Map<string, object[]>
}

// Namespaces and names are not validated here; should two pairs of invalid ones make the same
// key, both pairs' objects are compared, which can only make a pass run, never skip it.
function key(namespace: unknown, name: unknown): string | undefined {
  return typeof namespace === 'string' && typeof name === 'string' ? `${namespace}/${name}` : undefined
}

/** The objects of `snapshot` a plan of it reads. */
export function passInputs(snapshot: Snapshot): PassInputs {
  const named = new Map<string, object[]>()
  for (const mapping of snapshot.mappings) {
    const at = key(mapping.metadata?.namespace, mapping.spec?.serviceName)
    if (at !== undefined) named.set(at, [])
  }
  for (const service of snapshot.services) {
    const at = key(service.metadata?.namespace, service.metadata?.name)
    if (at !== undefined) named.get(at)?.push(service)
  }
  for (const slice of snapshot.endpointSlices) {
    const at = key(slice.metadata?.namespace, slice.metadata?.labels?.[SERVICE_NAME_LABEL])
    if (at !== undefined) named.get(at)?.push(slice)
  }
  return {mappings: snapshot.mappings, named}
}

function sameObjects(a: readonly object[], b: readonly object[]): boolean {
  return a.length === b.length && a.every((object, i) => object === b[i])
}

const planned = new WeakMap<MappingResource, string>()

/**
 * The part of a Mapping a pass reads: its spec, its names, age, generation (verdicts carry it), deletion and finalizers (the Go controller's is removed after a pass).
 * Not its status, which smartnat itself writes, nor labels, annotations or resourceVersion.
 */
function plannedPart(mapping: MappingResource): string {
  let text = planned.get(mapping)
  if (text === undefined) {
    const {namespace, name, creationTimestamp, generation, deletionTimestamp, finalizers} = mapping.metadata ?? {}
    planned.set(mapping, (text = JSON.stringify([namespace, name, creationTimestamp, generation, deletionTimestamp, finalizers, mapping.spec])))
  }
  return text
}

function sameMappings(a: readonly MappingResource[], b: readonly MappingResource[]): boolean {
  return a.length === b.length && a.every((mapping, i) => mapping === b[i] || plannedPart(mapping) === plannedPart(b[i]!))
}

/**
 * True when a pass over `b` would plan what one over `a` did. Services and EndpointSlices must be
 * the very same objects (a source replaces an object that changed, it never edits one); a Mapping
 * may be a new object whose spec, names, age and generation are unchanged.
 */
export function sameInputs(a: PassInputs, b: PassInputs): boolean {
  if (!sameMappings(a.mappings, b.mappings) || a.named.size !== b.named.size) return false
  for (const [at, objects] of a.named) {
    const others = b.named.get(at)
    if (others === undefined || !sameObjects(objects, others)) return false
  }
  return true
}
