/** Which resource types are served, by group/version/resource, and the discovery documents that describe them. */
import {bucketOf, builtinTypes, groupVersion, typesFromCrd, type ResourceType} from './resources.js'
import type {KubeObject} from './store.js'

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch']

export class Registry {
  private types: ResourceType[] = builtinTypes()

  /** The type served at group/version/resource, if any. */
  find(group: string, version: string, resource: string): ResourceType | undefined {
    return this.types.find((t) => t.group === group && t.version === version && t.resource === resource)
  }

  /** The type served at group/version/resource; throws naming it when it is not served (a CRD not created yet). */
  require(group: string, version: string, resource: string): ResourceType {
    const type = this.find(group, version, resource)
    if (type === undefined) throw new Error(`the test API server serves no ${resource} of ${groupVersion({group, version})}; create its CRD first`)
    return type
  }

  /** The type of an apiVersion and kind, if served. */
  findKind(apiVersion: string, kind: string): ResourceType | undefined {
    return this.types.find((t) => groupVersion(t) === apiVersion && t.kind === kind)
  }

  /** All served types. */
  all(): readonly ResourceType[] {
    return this.types
  }

  /** Serves (or re-serves, after an update) the versions a CRD defines. */
  serveCrd(crd: KubeObject): void {
    const added = typesFromCrd(crd)
    const bucket = added[0] ? bucketOf(added[0]) : undefined
    this.types = [...this.types.filter((t) => !(t.custom && bucketOf(t) === bucket)), ...added]
  }

  /** Stops serving a CRD's resource. */
  unserve(group: string, resource: string): void {
    this.types = this.types.filter((t) => !(t.custom && t.group === group && t.resource === resource))
  }

  /** Group versions served for a group, in the order they were added. */
  versionsOf(group: string): string[] {
    return [...new Set(this.types.filter((t) => t.group === group).map((t) => t.version))]
  }

  /** GET /api */
  coreVersions(serverAddress: string) {
    return {kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{clientCIDR: '0.0.0.0/0', serverAddress}]}
  }

  /** GET /apis */
  groupList() {
    const groups = [...new Set(this.types.filter((t) => t.group !== '').map((t) => t.group))]
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groups.map((name) => this.group(name)),
    }
  }

  /** GET /apis/<group> */
  group(name: string) {
    const versions = this.versionsOf(name).map((version) => ({groupVersion: `${name}/${version}`, version}))
    return {kind: 'APIGroup', apiVersion: 'v1', name, versions, preferredVersion: versions[0]}
  }

  /** GET /api/v1 or /apis/<group>/<version> */
  resourceList(group: string, version: string) {
    const types = this.types.filter((t) => t.group === group && t.version === version)
    const resources: object[] = []
    for (const t of types) {
      resources.push({
        name: t.resource,
        singularName: t.singular,
        namespaced: t.namespaced,
        kind: t.kind,
        verbs: VERBS,
        ...(t.shortNames.length > 0 ? {shortNames: t.shortNames} : {}),
        ...(t.categories.length > 0 ? {categories: t.categories} : {}),
      })
      if (t.hasStatus) resources.push({name: `${t.resource}/status`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update']})
    }
    return {kind: 'APIResourceList', apiVersion: 'v1', groupVersion: groupVersion({group, version}), resources}
  }

  /** Aggregated discovery (apidiscovery.k8s.io/v2 APIGroupDiscoveryList) for /api (core) or /apis (groups). */
  aggregated(core: boolean, apiVersion: string) {
    const groups = core ? [''] : [...new Set(this.types.filter((t) => t.group !== '').map((t) => t.group))]
    return {
      kind: 'APIGroupDiscoveryList',
      apiVersion,
      metadata: {},
      items: groups.map((group) => ({
        metadata: {name: group, creationTimestamp: null},
        versions: this.versionsOf(group).map((version) => ({
          version,
          freshness: 'Current',
          resources: this.types.filter((t) => t.group === group && t.version === version).map((t) => ({
            resource: t.resource,
            responseKind: {group, version, kind: t.kind},
            scope: t.namespaced ? 'Namespaced' : 'Cluster',
            singularResource: t.singular,
            verbs: VERBS,
            ...(t.shortNames.length > 0 ? {shortNames: t.shortNames} : {}),
            ...(t.categories.length > 0 ? {categories: t.categories} : {}),
            ...(t.hasStatus ? {subresources: [{subresource: 'status', responseKind: {group, version, kind: t.kind}, verbs: ['get', 'patch', 'update']}]} : {}),
          })),
        })),
      })),
    }
  }
}
