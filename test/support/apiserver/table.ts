/** Server-side printing: lists and objects as `meta.k8s.io/v1` Tables, which `kubectl get` renders. */
import {findResults, printResult} from './jsonpath.js'
import type {ResourceType} from './resources.js'
import type {KubeObject} from './store.js'

export interface ColumnDefinition {
  name: string
  type: string
  format: string
  description: string
  priority: number
}

/** What a Table row carries of the object: `?includeObject=None|Metadata|Object` (Metadata by default). */
export type IncludeObject = 'None' | 'Metadata' | 'Object'

/** Converts objects to a Table with the resource's columns. */
export function toTable(type: ResourceType, objects: KubeObject[], include: IncludeObject, listMeta: Record<string, unknown>, now = Date.now()) {
  const columns: ColumnDefinition[] = [nameColumn(), ...type.columns.map((c) => ({
    name: c.name,
    type: c.type,
    format: c.format ?? '',
    description: c.description ?? `Custom resource definition column (in JSONPath format): ${c.jsonPath ?? ''}`,
    priority: c.priority ?? 0,
  }))]
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: listMeta,
    columnDefinitions: columns,
    rows: objects.map((obj) => ({
      cells: [obj.metadata.name, ...type.columns.map((c) => (c.value ? c.value(obj, now) : cell(c.type, obj, c.jsonPath ?? '', now)))],
      object: rowObject(obj, include),
    })),
  }
}

function nameColumn(): ColumnDefinition {
  return {name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0}
}

function rowObject(obj: KubeObject, include: IncludeObject): unknown {
  if (include === 'None') return undefined
  if (include === 'Object') return obj
  return {kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: obj.metadata}
}

/** Like the CRD table convertor: only the first JSONPath result is shown, typed by the column. */
function cell(type: string, obj: KubeObject, jsonPath: string, now: number): unknown {
  const results = findResults(obj, jsonPath)
  if (results.length === 0) return null
  const value = results[0]
  switch (type) {
    case 'string':
      return printResult(value)
    case 'integer':
      return typeof value === 'number' ? Math.trunc(value) : null
    case 'number':
      return typeof value === 'number' ? value : null
    case 'boolean':
      return typeof value === 'boolean' ? value : null
    case 'date':
      return typeof value === 'string' ? humanAge(value, now) : null
    default:
      return null
  }
}

/** The age a timestamp shows in kubectl (apimachinery's duration.HumanDuration). */
export function humanAge(timestamp: string, now = Date.now()): string {
  const then = Date.parse(timestamp)
  if (Number.isNaN(then)) return '<invalid>'
  const seconds = Math.floor((now - then) / 1000)
  if (seconds < -1) return '<invalid>'
  if (seconds < 0) return '0s'
  if (seconds < 120) return `${seconds}s`
  const minutes = Math.floor(seconds / 60)
  if (minutes < 10) return seconds % 60 === 0 ? `${minutes}m` : `${minutes}m${seconds % 60}s`
  if (minutes < 180) return `${minutes}m`
  const hours = Math.floor(minutes / 60)
  if (hours < 8) return minutes % 60 === 0 ? `${hours}h` : `${hours}h${minutes % 60}m`
  if (hours < 48) return `${hours}h`
  if (hours < 24 * 8) return hours % 24 === 0 ? `${Math.floor(hours / 24)}d` : `${Math.floor(hours / 24)}d${hours % 24}h`
  const days = Math.floor(hours / 24)
  if (hours < 24 * 365 * 2) return `${days}d`
  const years = Math.floor(days / 365)
  if (hours < 24 * 365 * 8) return days % 365 === 0 ? `${years}y` : `${years}y${days % 365}d`
  return `${years}y`
}
