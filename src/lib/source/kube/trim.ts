/**
 * What the cache keeps of a Service or an EndpointSlice: the fields the planner reads, and the
 * metadata the cache itself needs. On a real cluster most of these objects is what smartnat never
 * reads (selectors, IP families, status; each endpoint's pod reference, node, zone and hints), and the
 * cache holds every Service and EndpointSlice of the cluster, not only those a Mapping names.
 * A feature that reads another field adds it here.
 *
 * What cached objects repeat is kept once (strings, and whole conditions, port and address lists),
 * so a cached object and its parts are never modified, and the usual shapes are built as object
 * literals of their exact size (docs/benchmarks.md, "The informer caches as compact records").
 */
import {SERVICE_ANNOTATIONS} from '../../mapping/loadbalancer.js'
import {SERVICE_NAME_LABEL} from '../../mapping/types.js'
import type {WatchedKind, WireObject} from './kinds.js'
import {SharedStrings} from '../../net/shared-strings.js'
import {SharedValues} from '../../net/shared-values.js'

type Json = Record<string, unknown>

const SERVICE_SPEC_FIELDS = [
  'type', 'clusterIP', 'clusterIPs', 'ports', 'externalName', 'sessionAffinity', 'sessionAffinityConfig',
  'loadBalancerClass', 'loadBalancerIP', 'loadBalancerSourceRanges',
] as const
/** Of a Service's ports and an EndpointSlice's: what a Mapping's servicePort and mode direct's named ports are matched by (not a Service's targetPort or nodePort, nor appProtocol). */
const PORT_FIELDS = ['name', 'port', 'protocol'] as const
const ENDPOINT_FIELDS = ['addresses', 'conditions'] as const

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function pick(object: Json, fields: readonly string[]): Json {
  const picked: Json = {}
  for (const field of fields) if (field in object) picked[field] = object[field]
  return picked
}

/** The metadata fields every Mapping and Service has, in the order the API server writes them: names, identity, version, generation (of a Service, when it has one) and age. */
const IDENTITY_FIELDS = ['namespace', 'name', 'uid', 'resourceVersion', 'generation', 'creationTimestamp']
/** What a Service's metadata is read for: names, identity (its Events name it), version (of two Services of one name, the later wins), generation, age and deletion. */
const SERVICE_METADATA_FIELDS = [...IDENTITY_FIELDS, 'deletionTimestamp']
/** An EndpointSlice's: names, and the version the cache compares (a slice made again under the same name has a newer one); no Event names a slice, nothing orders slices by age. */
const SLICE_METADATA_FIELDS = ['namespace', 'name', 'resourceVersion']

/**
 * `metadata`'s identity fields as one object literal, its creation time shared; undefined when it
 * lacks one (then they are picked field by field). A literal keeps all its fields in the object itself;
 * an object built field by field keeps four there and the rest in an array of their own (a Mapping's
 * metadata: 96 bytes instead of 72).
 */
function identityLiteral(metadata: WireObject['metadata']): WireObject['metadata'] | undefined {
  const {namespace, name, uid, resourceVersion, generation, creationTimestamp} = metadata
  if (namespace === undefined || name === undefined || uid === undefined || resourceVersion === undefined || creationTimestamp === undefined) return undefined
  const created = shared.share(creationTimestamp)
  return generation === undefined
    ? {namespace, name, uid, resourceVersion, creationTimestamp: created}
    : {namespace, name, uid, resourceVersion, generation, creationTimestamp: created}
}

/** The metadata the cache and the planner read: `fields`, and the labels and annotations asked for. */
function slimMetadata(metadata: WireObject['metadata'], fields: readonly string[], labels: readonly string[], annotations: readonly string[] = []): WireObject['metadata'] {
  const identity = fields.includes('uid') ? identityLiteral(metadata) : undefined
  const slim = identity ?? (pick(metadata, fields) as WireObject['metadata'])
  if (identity === undefined) {
    if ('creationTimestamp' in slim) slim.creationTimestamp = shared.share(slim.creationTimestamp)
  } else {
    for (const field of fields) if (!IDENTITY_FIELDS.includes(field) && field in metadata) slim[field] = metadata[field]
  }
  if (labels.length > 0 && isObject(metadata.labels)) {
    const kept = labels.length === 1 && labels[0] === SERVICE_NAME_LABEL ? serviceNameLabel(metadata.labels) : pick(metadata.labels, labels)
    if (Object.keys(kept).length > 0) slim.labels = kept
  }
  if (annotations.length > 0 && isObject(metadata.annotations)) {
    const kept = pick(metadata.annotations, annotations)
    if (Object.keys(kept).length > 0) slim.annotations = kept
  }
  return slim
}

/** An EndpointSlice's Service name label alone, as an object of its exact size: a copy of a one-label object, where one built label by label has room for four. */
function serviceNameLabel(labels: Json): Json {
  if (!(SERVICE_NAME_LABEL in labels)) return {}
  const kept = {...SERVICE_NAME_ONLY}
  kept[SERVICE_NAME_LABEL] = labels[SERVICE_NAME_LABEL]
  return kept
}
// Parsed rather than written as a literal: a literal with a computed key has room for four fields, and so would its copies.
const SERVICE_NAME_ONLY = JSON.parse(JSON.stringify({[SERVICE_NAME_LABEL]: ''})) as Json

/** A Service as the cache keeps it: with smartnat's annotations and, of a LoadBalancer, the addresses recorded in its status. */
function slimService(object: WireObject): WireObject {
  const metadata = slimMetadata(object.metadata, SERVICE_METADATA_FIELDS, [], SERVICE_ANNOTATIONS)
  // One literal for the usual shape, every field in the object itself.
  const slim: WireObject = isObject(object.spec)
    ? {apiVersion: object.apiVersion, kind: object.kind, metadata, spec: sharedServiceSpec(withoutRepeatedClusterIP(pick(object.spec, SERVICE_SPEC_FIELDS)))}
    : {apiVersion: object.apiVersion, kind: object.kind, metadata}
  if (!isObject(object.spec) && 'spec' in object) slim.spec = object.spec
  const ingress = isObject(object.status) && isObject(object.status.loadBalancer) ? object.status.loadBalancer.ingress : undefined
  if (Array.isArray(ingress) && ingress.length > 0) slim.status = {loadBalancer: {ingress}}
  return slim
}

/** A Service spec whose port list and source ranges, which many Services repeat, are shared. */
function sharedServiceSpec(spec: Json): Json {
  if (Array.isArray(spec.ports)) spec.ports = sharedList(spec.ports.map((port: unknown) => (isObject(port) ? pick(port, PORT_FIELDS) : port)))
  if ('loadBalancerSourceRanges' in spec) spec.loadBalancerSourceRanges = values.share(spec.loadBalancerSourceRanges, (list) => shared.shareAll(list))
  return spec
}

/**
 * `clusterIPs` is read only when `clusterIP` is not an IPv4 address (a dual-stack Service whose first
 * family is IPv6); on a single-stack Service it only repeats `clusterIP`, and is left out.
 */
function withoutRepeatedClusterIP(spec: Json): Json {
  const {clusterIPs} = spec
  if (!Array.isArray(clusterIPs) || clusterIPs.length !== 1 || clusterIPs[0] !== spec.clusterIP) return spec
  const {clusterIPs: _repeated, ...rest} = spec
  return rest
}

/** An EndpointSlice as the cache keeps it. */
function slimEndpointSlice(object: WireObject): WireObject {
  const {apiVersion, kind, addressType} = object
  const metadata = slimMetadata(object.metadata, SLICE_METADATA_FIELDS, [SERVICE_NAME_LABEL])
  // Anything that is not the expected shape is kept as it came: the planner reports or skips it.
  const ports = Array.isArray(object.ports) ? sharedList(object.ports.map((port: unknown) => (isObject(port) ? pick(port, PORT_FIELDS) : port))) : object.ports
  const endpoints = Array.isArray(object.endpoints) ? object.endpoints.map((endpoint: unknown) => (isObject(endpoint) ? slimEndpoint(endpoint) : endpoint)) : object.endpoints
  // One literal for the usual shape, every field in the object itself.
  if ('addressType' in object && 'ports' in object && 'endpoints' in object) return {apiVersion, kind, metadata, addressType, ports, endpoints}
  const slim: WireObject = {apiVersion, kind, metadata}
  if ('addressType' in object) slim.addressType = addressType
  if ('ports' in object) slim.ports = ports
  if ('endpoints' in object) slim.endpoints = endpoints
  return slim
}

/** An endpoint's addresses and conditions; conditions of only true/false flags (nearly all of them) are one shared object per combination. */
function slimEndpoint(endpoint: Json): Json {
  if (!('addresses' in endpoint && 'conditions' in endpoint)) return pick(endpoint, ENDPOINT_FIELDS)
  const {addresses, conditions} = endpoint
  return {addresses, conditions: isObject(conditions) ? sharedConditions(conditions) : conditions}
}

const conditionSets = new Map<string, Json>()
// ready, serving and terminating make 27 combinations with absent; room for a few more flags a server may add.
const MAX_CONDITION_SETS = 64

function sharedConditions(conditions: Json): Json {
  if (!Object.values(conditions).every((value) => typeof value === 'boolean')) return conditions
  const key = JSON.stringify(conditions)
  const known = conditionSets.get(key)
  if (known !== undefined) return known
  if (conditionSets.size < MAX_CONDITION_SETS) conditionSets.set(key, conditions)
  return conditions
}

/** A Namespace as the cache keeps it: its name and every label (a pool's selector may name any), nothing of its spec or status. */
function slimNamespace(object: WireObject): WireObject {
  const metadata = pick(object.metadata, ['name', 'uid', 'resourceVersion', 'creationTimestamp']) as WireObject['metadata']
  if (isObject(object.metadata.labels)) metadata.labels = object.metadata.labels
  return {apiVersion: object.apiVersion, kind: object.kind, metadata}
}

/**
 * The metadata of a Mapping the cache keeps: what planning, the status writeback, Events and the
 * finalizer's removal read. Not its labels and annotations, nor what an API server sends along with
 * every object (`managedFields`, kubectl's last-applied copy), often most of an object's size.
 */
const MAPPING_METADATA_FIELDS = [...IDENTITY_FIELDS, 'deletionTimestamp', 'finalizers']

/**
 * A listed or watched object as the cache keeps it: with the apiVersion and kind that list items
 * and watch events leave out, and of its metadata only what smartnat reads. The cache holds every
 * Mapping, Service and EndpointSlice of a cluster. The object given is not modified.
 */
export function cachedObject(kind: WatchedKind, object: WireObject): WireObject {
  const typed = {...object, apiVersion: kind.apiVersion, kind: kind.name}
  // Of Services and EndpointSlices, only what the planner reads; of Mappings, all but their metadata's extras, their status included.
  if (kind.name === 'Service') return slimService(typed)
  if (kind.name === 'EndpointSlice') return slimEndpointSlice(typed)
  if (kind.name === 'Namespace') return slimNamespace(typed)
  const metadata = slimMetadata(object.metadata, MAPPING_METADATA_FIELDS, [])
  return kind.name === 'Mapping' ? mappingSharing({...typed, metadata}) : {...typed, metadata}
}

/** Strings the cached objects repeat, one copy each, for every kind. */
const shared = new SharedStrings({limit: 4096})
/** Lists and objects the cached objects repeat whole (conditions, port lists, address lists), one copy each, for every kind. */
const values = new SharedValues({limit: 4096})

/** A list shared whole, its items shared too (with `item` done to each first); anything that is not an array is returned as it is. */
function sharedList<T>(list: T, item: (value: unknown) => unknown = (value) => value): T {
  if (!Array.isArray(list)) return list
  return values.share<unknown[]>(list, (kept) => kept.map((value) => values.share(item(value)))) as T
}

const CONDITION_FIELDS = ['type', 'status', 'reason', 'message', 'lastTransitionTime']

/**
 * A Mapping whose repeated parts are shared: the address lists, allowed sources and port lists of its
 * spec, its conditions (and their list) and the host names of its status.
 */
function mappingSharing(mapping: WireObject): WireObject {
  if (isObject(mapping.spec)) {
    const spec: Json = {...mapping.spec}
    if ('addresses' in spec) spec.addresses = values.share(spec.addresses, (list) => shared.shareAll(list))
    if ('allowedSources' in spec) spec.allowedSources = values.share(spec.allowedSources, (list) => shared.shareAll(list))
    if ('ports' in spec) spec.ports = sharedList(spec.ports)
    mapping.spec = spec
  }
  if (isObject(mapping.status)) {
    const status: Json = {...mapping.status}
    if (Array.isArray(status.conditions)) status.conditions = sharedList(status.conditions, (condition) => shared.shareFields(condition, CONDITION_FIELDS))
    if (isObject(status.configuredAddresses)) {
      // A copy of the object as it came, of its exact size, rather than one built key by key with room for four.
      const configured: Json = {...status.configuredAddresses}
      for (const address of Object.keys(configured)) configured[address] = shared.shareFields(configured[address], ['host'])
      status.configuredAddresses = configured
    }
    mapping.status = status
  }
  return mapping
}
