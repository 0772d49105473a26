/**
 * Structural OpenAPI schema checks for custom resources: defaulting, pruning of unknown fields and validation,
 * with the field paths and message shapes of apiextensions-apiserver.
 * `x-kubernetes-validations` (CEL) rules are not evaluated here: objects that only a CEL rule would reject are accepted.
 */
import type {StatusCause} from './errors.js'

export interface JsonSchemaProps {
  type?: string
  description?: string
  properties?: Record<string, JsonSchemaProps>
  items?: JsonSchemaProps
  additionalProperties?: boolean | JsonSchemaProps
  required?: string[]
  enum?: unknown[]
  minimum?: number
  maximum?: number
  exclusiveMinimum?: boolean
  exclusiveMaximum?: boolean
  minLength?: number
  maxLength?: number
  minItems?: number
  maxItems?: number
  minProperties?: number
  maxProperties?: number
  pattern?: string
  format?: string
  nullable?: boolean
  default?: unknown
  'x-kubernetes-preserve-unknown-fields'?: boolean
  'x-kubernetes-int-or-string'?: boolean
  'x-kubernetes-embedded-resource'?: boolean
  'x-kubernetes-list-type'?: string
  'x-kubernetes-list-map-keys'?: string[]
}

type JsonObject = Record<string, unknown>

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`
}

/** Fills in `default` values for absent fields, the way the server does on every write. */
export function applyDefaults(value: unknown, schema: JsonSchemaProps): void {
  if (isObject(value)) {
    for (const [key, prop] of Object.entries(schema.properties ?? {})) {
      if (value[key] === undefined && prop.default !== undefined) value[key] = structuredClone(prop.default)
      if (value[key] !== undefined) applyDefaults(value[key], prop)
    }
    if (isObject(schema.additionalProperties)) {
      for (const [key, child] of Object.entries(value)) {
        if (!(key in (schema.properties ?? {}))) applyDefaults(child, schema.additionalProperties)
      }
    }
  } else if (Array.isArray(value) && schema.items) {
    for (const element of value) applyDefaults(element, schema.items)
  }
}

/** Removes fields the schema does not declare and returns their paths (for strict field validation). */
export function pruneUnknownFields(value: unknown, schema: JsonSchemaProps, path = '', root = true): string[] {
  const unknown: string[] = []
  if (schema['x-kubernetes-preserve-unknown-fields']) return unknown
  if (isObject(value)) {
    const props = schema.properties ?? {}
    for (const key of Object.keys(value)) {
      if (root && (key === 'apiVersion' || key === 'kind' || key === 'metadata')) continue
      const child = props[key] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined)
      if (child === undefined && schema.additionalProperties !== true) {
        unknown.push(join(path, key))
        delete value[key]
      } else if (child !== undefined) {
        unknown.push(...pruneUnknownFields(value[key], child, join(path, key), false))
      }
    }
  } else if (Array.isArray(value) && schema.items) {
    value.forEach((element, i) => unknown.push(...pruneUnknownFields(element, schema.items!, `${path}[${i}]`, false)))
  }
  return unknown
}

/** Validates a value against a structural schema; returns one cause per violation, each naming its field. */
export function validateSchema(value: unknown, schema: JsonSchemaProps, path = ''): StatusCause[] {
  const causes: StatusCause[] = []
  const field = path
  const show = (v: unknown) => JSON.stringify(v)
  const add = (reason: string, message: string) => causes.push({reason, message, field})

  if (value === null) {
    if (!schema.nullable) add('FieldValueTypeInvalid', `Invalid value: "null": ${field} in body must be of type ${schema.type ?? 'object'}: "null"`)
    return causes
  }
  if (schema['x-kubernetes-int-or-string']) {
    if (typeof value !== 'string' && !Number.isInteger(value)) {
      add('FieldValueTypeInvalid', `Invalid value: ${show(value)}: ${field} in body must be of type integer-or-string: ${show(typeName(value))}`)
    }
    return causes
  }
  if (schema.type !== undefined && !hasType(value, schema.type)) {
    add('FieldValueTypeInvalid', `Invalid value: "${typeName(value)}": ${field} in body must be of type ${schema.type}: "${typeName(value)}"`)
    return causes
  }
  if (schema.enum !== undefined && !schema.enum.some((e) => JSON.stringify(e) === JSON.stringify(value))) {
    add('FieldValueNotSupported', `Unsupported value: ${show(value)}: supported values: ${schema.enum.map(show).join(', ')}`)
  }
  if (typeof value === 'number') causes.push(...checkNumber(value, schema, field))
  if (typeof value === 'string') causes.push(...checkString(value, schema, field))
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      add('FieldValueTooMany', `Too many: ${value.length}: must have at most ${schema.maxItems} items`)
    }
    if (schema.minItems !== undefined && value.length < schema.minItems) {
      add('FieldValueInvalid', `Invalid value: ${value.length}: ${field} in body should have at least ${schema.minItems} items`)
    }
    causes.push(...checkListType(value, schema, field))
    if (schema.items) value.forEach((element, i) => causes.push(...validateSchema(element, schema.items!, `${path}[${i}]`)))
  }
  if (isObject(value)) {
    for (const name of schema.required ?? []) {
      if (value[name] === undefined) causes.push({reason: 'FieldValueRequired', message: 'Required value', field: join(path, name)})
    }
    const count = Object.keys(value).length
    if (schema.maxProperties !== undefined && count > schema.maxProperties) {
      add('FieldValueTooMany', `Too many: ${count}: must have at most ${schema.maxProperties} items`)
    }
    if (schema.minProperties !== undefined && count < schema.minProperties) {
      add('FieldValueInvalid', `Invalid value: ${count}: ${field} in body should have at least ${schema.minProperties} properties`)
    }
    for (const [key, child] of Object.entries(value)) {
      const prop = schema.properties?.[key] ?? (isObject(schema.additionalProperties) ? schema.additionalProperties : undefined)
      if (prop && child !== undefined) causes.push(...validateSchema(child, prop, join(path, key)))
    }
  }
  return causes
}

function typeName(value: unknown): string {
  if (Array.isArray(value)) return 'array'
  if (value === null) return 'null'
  if (typeof value === 'number') return Number.isInteger(value) ? 'integer' : 'number'
  return typeof value
}

function hasType(value: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return isObject(value)
    case 'array':
      return Array.isArray(value)
    case 'string':
      return typeof value === 'string'
    case 'integer':
      return Number.isInteger(value)
    case 'number':
      return typeof value === 'number'
    case 'boolean':
      return typeof value === 'boolean'
    default:
      return true
  }
}

function checkNumber(value: number, schema: JsonSchemaProps, field: string): StatusCause[] {
  const causes: StatusCause[] = []
  const invalid = (message: string) => causes.push({reason: 'FieldValueInvalid', message: `Invalid value: ${value}: ${field} in body ${message}`, field})
  if (schema.minimum !== undefined) {
    if (schema.exclusiveMinimum ? value <= schema.minimum : value < schema.minimum) {
      invalid(`should be greater than ${schema.exclusiveMinimum ? '' : 'or equal to '}${schema.minimum}`)
    }
  }
  if (schema.maximum !== undefined) {
    if (schema.exclusiveMaximum ? value >= schema.maximum : value > schema.maximum) {
      invalid(`should be less than ${schema.exclusiveMaximum ? '' : 'or equal to '}${schema.maximum}`)
    }
  }
  return causes
}

function checkString(value: string, schema: JsonSchemaProps, field: string): StatusCause[] {
  const causes: StatusCause[] = []
  const length = [...value].length
  if (schema.maxLength !== undefined && length > schema.maxLength) {
    causes.push({reason: 'FieldValueTooLong', message: `Too long: may not be more than ${schema.maxLength} bytes`, field})
  }
  if (schema.minLength !== undefined && length < schema.minLength) {
    causes.push({reason: 'FieldValueInvalid', message: `Invalid value: "${value}": ${field} in body should be at least ${schema.minLength} chars long`, field})
  }
  if (schema.pattern !== undefined && !new RegExp(schema.pattern, 'u').test(value)) {
    causes.push({reason: 'FieldValueInvalid', message: `Invalid value: "${value}": ${field} in body should match '${schema.pattern}'`, field})
  }
  const format = schema.format === undefined ? undefined : FORMATS[schema.format]
  if (format && !format(value)) {
    causes.push({reason: 'FieldValueInvalid', message: `Invalid value: "${value}": ${field} in body must be of type ${schema.format}: "${value}"`, field})
  }
  return causes
}

/** Formats the server checks; others (as on the real server for unknown names) pass. */
const FORMATS: Record<string, (value: string) => boolean> = {
  ipv4: (v) => /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$/.test(v),
  'date-time': (v) => /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/.test(v),
}

function checkListType(value: unknown[], schema: JsonSchemaProps, field: string): StatusCause[] {
  const listType = schema['x-kubernetes-list-type']
  const seen = new Set<string>()
  const causes: StatusCause[] = []
  value.forEach((element, i) => {
    let identity: string
    if (listType === 'set') identity = JSON.stringify(element)
    else if (listType === 'map' && isObject(element)) identity = JSON.stringify((schema['x-kubernetes-list-map-keys'] ?? []).map((k) => element[k]))
    else return
    if (seen.has(identity)) causes.push({reason: 'FieldValueDuplicate', message: `Duplicate value: ${JSON.stringify(element)}`, field: `${field}[${i}]`})
    seen.add(identity)
  })
  return causes
}
