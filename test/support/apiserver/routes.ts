/** Maps request paths to what they address: discovery, OpenAPI, or a resource collection, object or subresource. */
import type {Registry} from './registry.js'
import type {ResourceType} from './resources.js'

export type Route =
  | {kind: 'version' | 'health' | 'coreVersions' | 'groupList' | 'openapiIndex'}
  | {kind: 'group'; group: string}
  | {kind: 'resourceList'; group: string; version: string}
  | {kind: 'openapiDocument'; path: string}
  | {kind: 'resource'; type: ResourceType; namespace?: string; name?: string; subresource?: string}

/** The route of a path, or undefined when nothing is served there. */
export function route(registry: Registry, pathname: string): Route | undefined {
  const parts = pathname.split('/').filter((p) => p !== '').map(decodeURIComponent)
  const joined = parts.join('/')
  if (joined === 'version') return {kind: 'version'}
  if (['healthz', 'readyz', 'livez'].includes(joined)) return {kind: 'health'}
  if (joined === 'api') return {kind: 'coreVersions'}
  if (joined === 'apis') return {kind: 'groupList'}
  if (joined === 'openapi/v3') return {kind: 'openapiIndex'}
  if (parts[0] === 'openapi' && parts[1] === 'v3') return {kind: 'openapiDocument', path: parts.slice(2).join('/')}
  let group: string
  let version: string
  let rest: string[]
  if (parts[0] === 'api' && parts[1] === 'v1') {
    group = ''
    version = 'v1'
    rest = parts.slice(2)
  } else if (parts[0] === 'apis' && parts.length >= 2) {
    group = parts[1]!
    if (parts.length === 2) return registry.versionsOf(group).length > 0 ? {kind: 'group', group} : undefined
    version = parts[2]!
    rest = parts.slice(3)
  } else {
    return undefined
  }
  if (registry.versionsOf(group).indexOf(version) < 0) return undefined
  if (rest.length === 0) return {kind: 'resourceList', group, version}
  let namespace: string | undefined
  if (rest[0] === 'namespaces' && rest.length >= 3) {
    const inner = registry.find(group, version, rest[2]!)
    if (inner?.namespaced) {
      namespace = rest[1]
      rest = rest.slice(2)
    }
  }
  const type = registry.find(group, version, rest[0]!)
  if (!type || rest.length > 3) return undefined
  if (type.namespaced === false && namespace !== undefined) return undefined
  const subresource = rest[2]
  if (subresource !== undefined && !(subresource === 'status' && type.hasStatus)) return undefined
  return {kind: 'resource', type, namespace, name: rest[1], subresource}
}
