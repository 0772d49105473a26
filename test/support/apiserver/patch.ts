/** The patch formats the API server accepts: JSON merge patch, JSON patch, and strategic merge patch. */
import {ApiError, badRequest} from './errors.js'

type Json = null | boolean | number | string | Json[] | {[key: string]: Json}
type JsonObject = {[key: string]: Json}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** RFC 7386: objects merge recursively, null deletes, everything else (arrays too) replaces. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return structuredClone(patch)
  const result: JsonObject = isObject(target) ? structuredClone(target) : {}
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key]
    else result[key] = applyMergePatch(result[key], value) as Json
  }
  return result
}

interface JsonPatchOp {
  op: string
  path: string
  from?: string
  value?: unknown
}

/** RFC 6902. A failing operation is a 422, as kube-apiserver reports it. */
export function applyJsonPatch(target: unknown, ops: unknown): unknown {
  if (!Array.isArray(ops)) throw badRequest('json patch must be an array of operations')
  let doc = structuredClone(target) as Json
  for (const raw of ops as JsonPatchOp[]) {
    if (!isObject(raw) || typeof raw.op !== 'string' || typeof raw.path !== 'string') {
      throw badRequest(`invalid json patch operation: ${JSON.stringify(raw)}`)
    }
    doc = applyOperation(doc, raw)
  }
  return doc
}

function patchFailure(message: string): ApiError {
  return new ApiError(422, 'Invalid', message)
}

function pointer(path: string): string[] {
  if (path === '') return []
  if (!path.startsWith('/')) throw patchFailure(`json patch path "${path}" must start with "/"`)
  return path.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'))
}

function lookup(doc: Json, tokens: string[], path: string): Json {
  let node: Json = doc
  for (const token of tokens) {
    if (Array.isArray(node)) node = node[arrayIndex(token, node.length - 1, path)]!
    else if (isObject(node) && token in node) node = node[token]!
    else throw patchFailure(`json patch: path "${path}" does not exist`)
  }
  return node
}

function arrayIndex(token: string, max: number, path: string): number {
  if (!/^(0|[1-9][0-9]*)$/.test(token) || Number(token) > max) {
    throw patchFailure(`json patch: index "${token}" out of bounds in "${path}"`)
  }
  return Number(token)
}

function remove(doc: Json, path: string): Json {
  const tokens = pointer(path)
  const last = tokens.pop()
  if (last === undefined) throw patchFailure('json patch: cannot remove the whole document')
  const parent = lookup(doc, tokens, path)
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length - 1, path), 1)
  else if (isObject(parent) && last in parent) delete parent[last]
  else throw patchFailure(`json patch: unable to remove nonexistent key "${last}" at "${path}"`)
  return doc
}

function add(doc: Json, path: string, value: Json, replace: boolean): Json {
  const tokens = pointer(path)
  const last = tokens.pop()
  if (last === undefined) return structuredClone(value)
  const parent = lookup(doc, tokens, path)
  if (Array.isArray(parent)) {
    if (replace) parent[arrayIndex(last, parent.length - 1, path)] = structuredClone(value)
    else if (last === '-') parent.push(structuredClone(value))
    else parent.splice(arrayIndex(last, parent.length, path), 0, structuredClone(value))
  } else if (isObject(parent)) {
    if (replace && !(last in parent)) throw patchFailure(`json patch: replace of missing key "${last}" at "${path}"`)
    parent[last] = structuredClone(value)
  } else {
    throw patchFailure(`json patch: "${path}" has no parent object or array`)
  }
  return doc
}

function applyOperation(doc: Json, op: JsonPatchOp): Json {
  switch (op.op) {
    case 'add':
      return add(doc, op.path, op.value as Json, false)
    case 'replace':
      return add(doc, op.path, op.value as Json, true)
    case 'remove':
      return remove(doc, op.path)
    case 'move': {
      const value = structuredClone(lookup(doc, pointer(op.from ?? ''), op.from ?? ''))
      return add(remove(doc, op.from ?? ''), op.path, value, false)
    }
    case 'copy':
      return add(doc, op.path, structuredClone(lookup(doc, pointer(op.from ?? ''), op.from ?? '')), false)
    case 'test': {
      const actual = lookup(doc, pointer(op.path), op.path)
      if (JSON.stringify(actual) !== JSON.stringify(op.value)) {
        throw patchFailure(`json patch: test operation for path "${op.path}" failed`)
      }
      return doc
    }
    default:
      throw badRequest(`json patch: unknown operation "${op.op}"`)
  }
}

/**
 * Merge keys of the lists that strategic merge patch merges element-wise, by dotted path.
 * Lists not named here are replaced whole, which is the strategy of every list without a merge key.
 */
const MERGE_KEYS: Record<string, string> = {
  'spec.ports': 'port',
  'metadata.ownerReferences': 'uid',
  'status.conditions': 'type',
  'status.loadBalancer.ingress': 'ip',
}
const MERGED_PRIMITIVE_LISTS = new Set(['metadata.finalizers'])

/** Strategic merge patch for the core types served here, with the directives kubectl sends. */
export function applyStrategicMergePatch(target: unknown, patch: unknown): unknown {
  return strategicMerge(isObject(target) ? target : {}, patch, '')
}

function strategicMerge(target: JsonObject, patch: unknown, path: string): Json {
  if (!isObject(patch)) throw badRequest('strategic merge patch must be a JSON object')
  if (patch.$patch === 'replace') return withoutDirectives(patch)
  const result = structuredClone(target)
  for (const [key, value] of Object.entries(patch)) {
    const childPath = path === '' ? key : `${path}.${key}`
    if (key === '$patch' || key === '$retainKeys' || key.startsWith('$setElementOrder/')) continue
    if (key.startsWith('$deleteFromPrimitiveList/')) {
      const field = key.slice('$deleteFromPrimitiveList/'.length)
      const current = result[field]
      if (Array.isArray(current) && Array.isArray(value)) result[field] = current.filter((v) => !value.includes(v))
      continue
    }
    if (value === null) {
      delete result[key]
    } else if (isObject(value)) {
      if (value.$patch === 'delete') delete result[key]
      else result[key] = strategicMerge(isObject(result[key]) ? result[key] : {}, value, childPath)
    } else if (Array.isArray(value)) {
      result[key] = mergeList(result[key], value, childPath)
    } else {
      result[key] = value
    }
  }
  for (const [key, order] of Object.entries(patch)) {
    if (!key.startsWith('$setElementOrder/') || !Array.isArray(order)) continue
    const field = key.slice('$setElementOrder/'.length)
    const list = result[field]
    if (Array.isArray(list)) result[field] = orderList(list, order, MERGE_KEYS[path === '' ? field : `${path}.${field}`])
  }
  if (Array.isArray(patch.$retainKeys)) {
    const keep = new Set(patch.$retainKeys)
    for (const key of Object.keys(result)) if (!keep.has(key)) delete result[key]
  }
  return result
}

function mergeList(current: Json | undefined, patch: Json[], path: string): Json[] {
  const mergeKey = MERGE_KEYS[path]
  const base = Array.isArray(current) ? current : []
  if (patch.some((e) => isObject(e) && e.$patch === 'replace')) {
    return patch.filter((e) => !(isObject(e) && e.$patch === 'replace')).map((e) => (isObject(e) ? withoutDirectives(e) : e))
  }
  if (MERGED_PRIMITIVE_LISTS.has(path)) return [...base, ...patch.filter((v) => !base.includes(v))]
  if (mergeKey === undefined) return patch.map((e) => (isObject(e) ? withoutDirectives(e) : e))
  const result = [...base]
  for (const element of patch) {
    if (!isObject(element)) continue
    const index = result.findIndex((e) => isObject(e) && e[mergeKey] === element[mergeKey])
    if (element.$patch === 'delete') {
      if (index >= 0) result.splice(index, 1)
    } else if (index >= 0) {
      result[index] = strategicMerge(result[index] as JsonObject, element, path)
    } else {
      result.push(withoutDirectives(element))
    }
  }
  return result
}

function orderList(list: Json[], order: Json[], mergeKey: string | undefined): Json[] {
  const keyOf = (e: Json): string => JSON.stringify(mergeKey !== undefined && isObject(e) ? e[mergeKey] : e)
  const rank = new Map(order.map((e, i) => [keyOf(e), i]))
  return [...list].sort((a, b) => (rank.get(keyOf(a)) ?? order.length) - (rank.get(keyOf(b)) ?? order.length))
}

function withoutDirectives(value: JsonObject): JsonObject {
  const result: JsonObject = {}
  for (const [key, v] of Object.entries(value)) {
    if (key.startsWith('$')) continue
    result[key] = isObject(v) ? withoutDirectives(v) : v
  }
  return result
}
