/**
 * OpenAPI v3 documents, published per group/version as kube-apiserver does. kubectl reads them to learn that the
 * server validates fields itself (the `fieldValidation` parameter on PATCH) and to explain custom resources.
 */
import {createHash} from 'node:crypto'
import type {Registry} from './registry.js'
import {groupVersion, type ResourceType} from './resources.js'

/** The path segment of a group/version document: `api/v1` or `apis/<group>/<version>`. */
export function openApiPath(type: {group: string; version: string}): string {
  return type.group === '' ? `api/${type.version}` : `apis/${type.group}/${type.version}`
}

/** GET /openapi/v3: where each group/version document lives, with a hash that changes with its content. */
export function openApiIndex(registry: Registry) {
  const paths: Record<string, {serverRelativeURL: string}> = {}
  for (const path of new Set(registry.all().map(openApiPath))) {
    const doc = openApiDocument(registry, path)
    const hash = createHash('sha512').update(JSON.stringify(doc)).digest('hex').toUpperCase().slice(0, 128)
    paths[path] = {serverRelativeURL: `/openapi/v3/${path}?hash=${hash}`}
  }
  return {paths}
}

/** GET /openapi/v3/<path>, or undefined when no type is served there. */
export function openApiDocument(registry: Registry, path: string) {
  const types = registry.all().filter((t) => openApiPath(t) === path)
  if (types.length === 0) return undefined
  const paths: Record<string, unknown> = {}
  const schemas: Record<string, unknown> = {}
  for (const type of types) {
    const ref = schemaName(type)
    schemas[ref] = objectSchema(type)
    const gvk = {group: type.group, version: type.version, kind: type.kind}
    const body = {schema: {$ref: `#/components/schemas/${ref}`}}
    const query = (name: string) => ({name, in: 'query', schema: {type: 'string', uniqueItems: true}})
    const item = `/${path}/${type.namespaced ? 'namespaces/{namespace}/' : ''}${type.resource}/{name}`
    const ok = {'200': {description: 'OK', content: {'application/json': body}}}
    paths[item] = {
      get: {operationId: `read${type.kind}`, 'x-kubernetes-action': 'get', 'x-kubernetes-group-version-kind': gvk, responses: ok},
      put: {
        operationId: `replace${type.kind}`, 'x-kubernetes-action': 'put', 'x-kubernetes-group-version-kind': gvk,
        parameters: [query('dryRun'), query('fieldManager'), query('fieldValidation')],
        requestBody: {content: {'application/json': body}}, responses: ok,
      },
      patch: {
        operationId: `patch${type.kind}`, 'x-kubernetes-action': 'patch', 'x-kubernetes-group-version-kind': gvk,
        parameters: [query('dryRun'), query('fieldManager'), query('fieldValidation'), {name: 'force', in: 'query', schema: {type: 'boolean'}}],
        requestBody: {content: Object.fromEntries(PATCH_TYPES.map((t) => [t, {schema: {type: 'object'}}]))}, responses: ok,
      },
      delete: {operationId: `delete${type.kind}`, 'x-kubernetes-action': 'delete', 'x-kubernetes-group-version-kind': gvk, responses: ok},
    }
  }
  return {openapi: '3.0.0', info: {title: 'Kubernetes', version: 'unversioned'}, paths, components: {schemas}}
}

// Strategic merge patch is left out even for built-in types: kubectl then computes it from its compiled-in types
// instead of from schemas this server does not publish.
const PATCH_TYPES = ['application/json-patch+json', 'application/merge-patch+json', 'application/apply-patch+yaml']

function schemaName(type: ResourceType): string {
  const reversed = type.group === '' ? 'io.k8s.api.core' : type.group.split('.').reverse().join('.')
  return `${reversed}.${type.version}.${type.kind}`
}

function objectSchema(type: ResourceType) {
  const base = type.schema ?? {type: 'object', 'x-kubernetes-preserve-unknown-fields': true}
  return {
    ...base,
    description: base.description ?? `${type.kind} (${groupVersion(type)})`,
    type: 'object',
    properties: {
      apiVersion: {type: 'string', description: 'APIVersion defines the versioned schema of this representation of an object.'},
      kind: {type: 'string', description: 'Kind is a string value representing the REST resource this object represents.'},
      metadata: {type: 'object', description: "Standard object's metadata.", 'x-kubernetes-preserve-unknown-fields': true},
      ...(base.properties ?? {}),
    },
    'x-kubernetes-group-version-kind': [{group: type.group, version: type.version, kind: type.kind}],
  }
}
