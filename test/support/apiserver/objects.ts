/** The storage semantics of kube-apiserver: create, read, list, update, patch and delete with their side effects. */
import {randomBytes, randomUUID} from 'node:crypto'
import {admitBuiltin, admitCustom, ClusterIpAllocator, validateName} from './admission.js'
import {alreadyExists, badRequest, conflict, invalid, notFound, unsupportedMediaType, type StatusBody} from './errors.js'
import {applyJsonPatch, applyMergePatch, applyStrategicMergePatch} from './patch.js'
import type {Registry} from './registry.js'
import {bucketOf, groupVersion, type ResourceType} from './resources.js'
import {parseFieldSelector, parseLabelSelector} from './selectors.js'
import {clone, objectKey, type KubeObject, type Store} from './store.js'

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore'

export interface WriteOptions {
  dryRun?: boolean
  fieldValidation?: FieldValidation
  /** Write through the /status subresource: only status changes. */
  status?: boolean
}

export interface WriteResult {
  object: KubeObject
  warnings: string[]
  created: boolean
}

export interface ListQuery {
  labelSelector?: string | null
  fieldSelector?: string | null
  limit?: number
  continue?: string | null
  resourceVersion?: string | null
  resourceVersionMatch?: string | null
}

export interface DeleteOptions {
  preconditions?: {uid?: string; resourceVersion?: string}
  propagationPolicy?: string
  gracePeriodSeconds?: number
}

export const PatchType = {
  json: 'application/json-patch+json',
  merge: 'application/merge-patch+json',
  strategic: 'application/strategic-merge-patch+json',
  apply: 'application/apply-patch+yaml',
} as const

const CONTINUE_TOO_OLD = 'The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list.'

function now(): string {
  return new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
}

function withoutMeta(obj: KubeObject, dropStatus: boolean): Record<string, unknown> {
  const rest: Record<string, unknown> = {...obj}
  delete rest.metadata
  if (dropStatus) delete rest.status
  return rest
}

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(sortKeys(a)) === JSON.stringify(sortKeys(b))
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys)
  if (typeof value !== 'object' || value === null) return value
  return Object.fromEntries(Object.keys(value).sort().map((k) => [k, sortKeys((value as Record<string, unknown>)[k])]))
}

export class ObjectApi {
  private readonly ips = new ClusterIpAllocator()

  constructor(
    readonly store: Store,
    readonly registry: Registry,
  ) {}

  /** Reads one object; 404 when absent. */
  get(type: ResourceType, namespace: string | undefined, name: string): KubeObject {
    const found = this.store.get(bucketOf(type), objectKey(this.scope(type, namespace), name))
    if (!found) throw notFound(type.group, type.resource, name)
    return this.present(type, found)
  }

  /** A predicate for label and field selectors on this type. */
  matcher(type: ResourceType, labelSelector?: string | null, fieldSelector?: string | null): (obj: KubeObject) => boolean {
    const labels = parseLabelSelector(labelSelector)
    const fields = parseFieldSelector(fieldSelector, ['metadata.name', 'metadata.namespace', ...Object.keys(type.fieldLabels)])
    return (obj) => {
      if (!labels.matches(obj.metadata.labels as Record<string, string> | undefined)) return false
      if (fields.requirements.length === 0) return true
      const values: Record<string, string> = {'metadata.name': obj.metadata.name, 'metadata.namespace': obj.metadata.namespace ?? ''}
      for (const [label, read] of Object.entries(type.fieldLabels)) values[label] = read(obj)
      return fields.matches(values)
    }
  }

  /** Lists with selectors, limit/continue paging at a consistent resourceVersion, and resourceVersionMatch=Exact. */
  list(type: ResourceType, namespace: string | undefined, query: ListQuery) {
    const match = this.matcher(type, query.labelSelector, query.fieldSelector)
    const bucket = bucketOf(type)
    const ns = this.scope(type, namespace)
    let rv = this.store.currentRv()
    // The stored objects themselves, read only: the page alone is copied below.
    let objects: readonly KubeObject[]
    let start = ''
    if (query.continue) {
      const token = decodeContinue(query.continue)
      rv = token.rv
      start = token.start
      objects = this.store.listSharedAt(bucket, rv, ns, CONTINUE_TOO_OLD)
    } else if (query.resourceVersion && query.resourceVersion !== '0' && query.resourceVersionMatch === 'Exact') {
      rv = parseRv(query.resourceVersion)
      objects = this.store.listSharedAt(bucket, rv, ns)
    } else {
      objects = this.store.listShared(bucket, ns)
    }
    const keyed = objects.map((o) => ({key: objectKey(o.metadata.namespace, o.metadata.name), o})).filter((e) => e.key > start && match(e.o))
    const limit = query.limit && query.limit > 0 ? query.limit : keyed.length
    const page = keyed.slice(0, limit)
    const metadata: Record<string, unknown> = {resourceVersion: String(rv)}
    if (keyed.length > page.length) {
      metadata.continue = encodeContinue(rv, page[page.length - 1]!.key)
      if (!query.labelSelector && !query.fieldSelector) metadata.remainingItemCount = keyed.length - page.length
    }
    return {
      kind: type.listKind,
      apiVersion: groupVersion(type),
      metadata,
      items: page.map((e) => this.present(type, clone(e.o))),
    }
  }

  /** POST to a collection. */
  create(type: ResourceType, namespace: string | undefined, body: unknown, options: WriteOptions = {}): WriteResult {
    const obj = this.decode(type, body)
    const ns = this.scope(type, namespace ?? obj.metadata.namespace)
    if (type.namespaced && obj.metadata.namespace !== undefined && namespace !== undefined && obj.metadata.namespace !== namespace) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
    }
    if (!obj.metadata.name && typeof obj.metadata.generateName === 'string') {
      obj.metadata.name = `${obj.metadata.generateName}${randomBytes(4).toString('hex').slice(0, 5)}`
    }
    obj.metadata.name ??= ''
    const nameCauses = validateName(type, obj.metadata.name)
    if (nameCauses.length > 0) throw invalid(type.group, type.kind, obj.metadata.name, nameCauses)
    if (ns !== undefined) {
      obj.metadata.namespace = ns
      if (!this.store.get('/namespaces', objectKey(undefined, ns))) throw notFound('', 'namespaces', ns)
    } else {
      delete obj.metadata.namespace
    }
    const key = objectKey(ns, obj.metadata.name)
    if (this.store.get(bucketOf(type), key)) throw alreadyExists(type.group, type.resource, obj.metadata.name)
    for (const field of ['resourceVersion', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'managedFields', 'selfLink']) delete obj.metadata[field]
    obj.metadata.uid = randomUUID()
    obj.metadata.creationTimestamp = now()
    if (type.custom || type.resource === 'customresourcedefinitions') obj.metadata.generation = 1
    if (type.hasStatus) delete obj.status
    const warnings = this.admit(type, obj, undefined, options)
    const stored = options.dryRun ? obj : this.store.commit(bucketOf(type), key, obj)
    if (!options.dryRun && type.resource === 'customresourcedefinitions') this.registry.serveCrd(stored)
    return {object: this.present(type, stored), warnings, created: true}
  }

  /** PUT of a whole object (or of its status). */
  update(type: ResourceType, namespace: string | undefined, name: string, body: unknown, options: WriteOptions = {}): WriteResult {
    const obj = this.decode(type, body)
    if (obj.metadata.name !== undefined && obj.metadata.name !== name) {
      throw badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`)
    }
    const ns = this.scope(type, namespace)
    if (type.namespaced && obj.metadata.namespace !== undefined && obj.metadata.namespace !== ns) {
      throw badRequest('the namespace of the provided object does not match the namespace sent on the request')
    }
    const current = this.store.get(bucketOf(type), objectKey(ns, name))
    if (!current) throw notFound(type.group, type.resource, name)
    const rv = obj.metadata.resourceVersion
    if (rv === undefined || rv === '') {
      if (type.custom) {
        throw invalid(type.group, type.kind, name, [{reason: 'FieldValueInvalid', field: 'metadata.resourceVersion', message: 'Invalid value: 0x0: must be specified for an update'}])
      }
    } else if (rv !== current.metadata.resourceVersion) {
      throw conflict(type.group, type.resource, name, 'the object has been modified; please apply your changes to the latest version and try again')
    }
    return this.replace(type, current, obj, options)
  }

  /** PATCH with one of the four patch types; apply patches create a missing object. */
  patch(type: ResourceType, namespace: string | undefined, name: string, patchType: string, patchBody: unknown, options: WriteOptions & {fieldManager?: string} = {}): WriteResult {
    const ns = this.scope(type, namespace)
    const current = this.store.get(bucketOf(type), objectKey(ns, name))
    if (patchType === PatchType.apply && !options.fieldManager) {
      throw badRequest('PATCH, fieldManager is required for apply requests')
    }
    if (!current) {
      if (patchType !== PatchType.apply || options.status) throw notFound(type.group, type.resource, name)
      return this.create(type, namespace, patchBody, options)
    }
    let patched: unknown
    switch (patchType) {
      case PatchType.json:
        patched = applyJsonPatch(current, patchBody)
        break
      case PatchType.merge:
        patched = applyMergePatch(current, patchBody)
        break
      case PatchType.strategic:
        if (type.custom) throw unsupportedMediaType(`${patchType}; custom resources accept ${PatchType.json}, ${PatchType.merge}, ${PatchType.apply}`)
        patched = applyStrategicMergePatch(current, patchBody)
        break
      case PatchType.apply:
        // Field ownership is not tracked: an apply merges the applied configuration into the live object.
        patched = applyStrategicMergePatch(current, patchBody)
        break
      default:
        throw unsupportedMediaType(patchType)
    }
    const obj = this.decode(type, patched)
    if (obj.metadata.resourceVersion !== current.metadata.resourceVersion) {
      throw conflict(type.group, type.resource, name, 'the object has been modified; please apply your changes to the latest version and try again')
    }
    if (obj.metadata.name !== name) throw badRequest(`the name of the object (${String(obj.metadata.name)}) does not match the name on the URL (${name})`)
    return this.replace(type, current, obj, options)
  }

  /** DELETE one object: immediate, or marked with deletionTimestamp while finalizers remain. */
  delete(type: ResourceType, namespace: string | undefined, name: string, options: DeleteOptions = {}, dryRun = false): KubeObject | StatusBody {
    const ns = this.scope(type, namespace)
    const key = objectKey(ns, name)
    const current = this.store.get(bucketOf(type), key)
    if (!current) throw notFound(type.group, type.resource, name)
    const pre = options.preconditions ?? {}
    if (pre.uid !== undefined && pre.uid !== current.metadata.uid) {
      throw conflict(type.group, type.resource, name, `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${String(current.metadata.uid)}`)
    }
    if (pre.resourceVersion !== undefined && pre.resourceVersion !== current.metadata.resourceVersion) {
      throw conflict(type.group, type.resource, name, `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${String(current.metadata.resourceVersion)}`)
    }
    if (dryRun) return this.present(type, current)
    const finalizers = current.metadata.finalizers
    if (Array.isArray(finalizers) && finalizers.length > 0) {
      if (current.metadata.deletionTimestamp) return this.present(type, current)
      // As kube-apiserver's markAsDeleting: the first deletion of a generational object bumps its generation.
      if (typeof current.metadata.generation === 'number') current.metadata.generation += 1
      current.metadata.deletionTimestamp = now()
      current.metadata.deletionGracePeriodSeconds = 0
      return this.present(type, this.store.commit(bucketOf(type), key, current))
    }
    return this.remove(type, key, current)
  }

  /** DELETE on a collection: every object the selectors match. */
  deleteCollection(type: ResourceType, namespace: string | undefined, query: ListQuery, dryRun = false) {
    const list = this.list(type, namespace, {labelSelector: query.labelSelector, fieldSelector: query.fieldSelector})
    const items = list.items.map((o) => this.delete(type, o.metadata.namespace, o.metadata.name, {}, dryRun))
    return {...list, metadata: {resourceVersion: String(this.store.currentRv())}, items}
  }

  private remove(type: ResourceType, key: string, current: KubeObject): KubeObject | StatusBody {
    if (type.resource === 'namespaces') this.emptyNamespace(current.metadata.name)
    if (type.resource === 'customresourcedefinitions') this.dropCrd(current)
    const gone = this.store.commit(bucketOf(type), key, undefined)
    if (!type.custom) return this.present(type, gone)
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Success',
      details: {name: current.metadata.name, group: type.group, kind: type.resource, uid: String(current.metadata.uid)},
      code: 200,
    }
  }

  private emptyNamespace(namespace: string): void {
    const buckets = new Set(this.registry.all().filter((t) => t.namespaced).map(bucketOf))
    for (const bucket of buckets) {
      for (const obj of this.store.list(bucket, namespace)) this.store.commit(bucket, objectKey(namespace, obj.metadata.name), undefined)
    }
  }

  private dropCrd(crd: KubeObject): void {
    const spec = crd.spec as {group: string; names: {plural: string}}
    const bucket = `${spec.group}/${spec.names.plural}`
    for (const obj of this.store.list(bucket)) this.store.commit(bucket, objectKey(obj.metadata.namespace, obj.metadata.name), undefined)
    this.store.dropBucket(bucket)
    this.registry.unserve(spec.group, spec.names.plural)
  }

  /** Shared tail of update and patch: subresource rules, generation, admission, and no write when nothing changed. */
  private replace(type: ResourceType, current: KubeObject, next: KubeObject, options: WriteOptions): WriteResult {
    let obj: KubeObject
    if (options.status) {
      obj = clone(current)
      if (next.status === undefined) delete obj.status
      else obj.status = next.status
    } else {
      obj = next
      for (const field of ['uid', 'creationTimestamp', 'generation', 'deletionTimestamp', 'deletionGracePeriodSeconds', 'namespace']) {
        if (current.metadata[field] === undefined) delete obj.metadata[field]
        else obj.metadata[field] = current.metadata[field]
      }
      if (type.hasStatus) {
        if (current.status === undefined) delete obj.status
        else obj.status = clone(current.status)
      }
      if (current.metadata.generation !== undefined && !sameJson(withoutMeta(obj, type.hasStatus), withoutMeta(current, type.hasStatus))) {
        obj.metadata.generation = (current.metadata.generation as number) + 1
      }
    }
    obj.metadata.resourceVersion = current.metadata.resourceVersion
    const warnings = this.admit(type, obj, current, options)
    if (type.resource === 'customresourcedefinitions' && !options.status && sameJson(acceptedNames(current), acceptedNames(obj))) obj.status = current.status
    const key = objectKey(current.metadata.namespace, current.metadata.name)
    const finalizers = obj.metadata.finalizers
    if (obj.metadata.deletionTimestamp && !(Array.isArray(finalizers) && finalizers.length > 0)) {
      if (options.dryRun) return {object: this.present(type, obj), warnings, created: false}
      const gone = this.remove(type, key, obj)
      return {object: gone.kind === 'Status' ? this.present(type, obj) : (gone as KubeObject), warnings, created: false}
    }
    if (sameJson(obj, current) || options.dryRun) return {object: this.present(type, options.dryRun ? obj : current), warnings, created: false}
    const stored = this.store.commit(bucketOf(type), key, obj)
    if (type.resource === 'customresourcedefinitions') this.registry.serveCrd(stored)
    return {object: this.present(type, stored), warnings, created: false}
  }

  /** Runs defaulting and validation; returns warnings, throws 400 or 422. */
  private admit(type: ResourceType, obj: KubeObject, old: KubeObject | undefined, options: WriteOptions): string[] {
    const warnings: string[] = []
    let causes
    if (type.custom) {
      const check = admitCustom(type, obj)
      const validation = options.fieldValidation ?? 'Warn'
      if (check.unknownFields.length > 0 && validation === 'Strict') {
        throw badRequest(`strict decoding error: ${check.unknownFields.map((f) => `unknown field "${f}"`).join(', ')}`)
      }
      if (validation === 'Warn') warnings.push(...check.unknownFields.map((f) => `unknown field "${f}"`))
      causes = check.causes
    } else {
      causes = admitBuiltin(type, obj, old, () => this.allocateClusterIp())
    }
    if (causes.length > 0) throw invalid(type.group, type.kind, obj.metadata.name, causes)
    return warnings
  }

  private allocateClusterIp(): string {
    const inUse = new Set(this.store.list('/services').map((s) => String((s.spec as {clusterIP?: string} | undefined)?.clusterIP)))
    return this.ips.allocate(inUse)
  }

  /** Checks apiVersion/kind of a request body and fills them in. */
  private decode(type: ResourceType, body: unknown): KubeObject {
    if (typeof body !== 'object' || body === null || Array.isArray(body)) throw badRequest('the request body must be a JSON or YAML object')
    const obj = clone(body) as KubeObject
    const apiVersion = groupVersion(type)
    if (obj.kind !== undefined && obj.kind !== type.kind) {
      throw badRequest(`the kind in the data (${String(obj.kind)}) does not match the expected kind (${type.kind})`)
    }
    if (obj.apiVersion !== undefined && obj.apiVersion !== apiVersion) {
      throw badRequest(`the API version in the data (${String(obj.apiVersion)}) does not match the expected API version (${apiVersion})`)
    }
    obj.apiVersion = apiVersion
    obj.kind = type.kind
    if (typeof obj.metadata !== 'object' || obj.metadata === null) obj.metadata = {} as KubeObject['metadata']
    if (type.resource === 'leases') checkMicroTimes(obj)
    return obj
  }

  private present(type: ResourceType, obj: KubeObject): KubeObject {
    return {...obj, apiVersion: groupVersion(type), kind: type.kind}
  }

  private scope(type: ResourceType, namespace: string | undefined): string | undefined {
    return type.namespaced ? namespace : undefined
  }
}

const RFC3339_MICRO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/

// A Lease's times are MicroTime, which the API server decodes with Go's layout 2006-01-02T15:04:05.000000Z07:00:
// exactly six fractional digits, or the whole body is refused before validation.
function checkMicroTimes(obj: KubeObject): void {
  const spec = (obj.spec ?? {}) as Record<string, unknown>
  for (const field of ['acquireTime', 'renewTime']) {
    const value = spec[field]
    if (value === undefined || value === null || (typeof value === 'string' && RFC3339_MICRO.test(value))) continue
    const rest = typeof value === 'string' ? value.replace(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}/, '') : String(value)
    throw badRequest(`Lease in version "v1" cannot be handled as a Lease: parsing time ${JSON.stringify(String(value))} as "2006-01-02T15:04:05.000000Z07:00": cannot parse ${JSON.stringify(rest)} as ".000000"`)
  }
}

function acceptedNames(crd: KubeObject): unknown {
  return (crd.status as {acceptedNames?: unknown} | undefined)?.acceptedNames
}

/** Parses a resourceVersion parameter; anything but a decimal counter is a 400. */
export function parseRv(text: string): number {
  if (!/^[0-9]+$/.test(text)) throw badRequest(`invalid resource version "${text}"`)
  return Number(text)
}

function encodeContinue(rv: number, start: string): string {
  return Buffer.from(JSON.stringify({v: 'meta.k8s.io/v1', rv, start})).toString('base64url')
}

function decodeContinue(token: string): {rv: number; start: string} {
  try {
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as {v?: string; rv?: unknown; start?: unknown}
    if (parsed.v === 'meta.k8s.io/v1' && typeof parsed.rv === 'number' && typeof parsed.start === 'string') return {rv: parsed.rv, start: parsed.start}
  } catch {
    // reported below
  }
  throw badRequest(`continue key is not valid: ${token}`)
}

