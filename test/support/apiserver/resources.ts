/** The resource types the server serves: built-in ones and those that CustomResourceDefinitions add. */
import type {JsonSchemaProps} from './schema.js'
import type {KubeObject} from './store.js'
import {humanAge} from './table.js'

/** A Table column: either a CRD printer column (jsonPath) or a built-in one computed from the object. */
export interface PrinterColumn {
  name: string
  type: string
  format?: string
  description?: string
  priority?: number
  jsonPath?: string
  value?: (obj: KubeObject, now: number) => unknown
}

export interface ResourceType {
  group: string
  version: string
  resource: string
  kind: string
  listKind: string
  singular: string
  namespaced: boolean
  shortNames: string[]
  categories: string[]
  /** Served with a /status subresource: the main endpoint ignores status, /status changes only status. */
  hasStatus: boolean
  /** Defined by a CRD (validated by `schema`, JSON and merge patches only). */
  custom: boolean
  schema?: JsonSchemaProps
  columns: PrinterColumn[]
  /** Field selector labels beyond metadata.name and metadata.namespace, with how to read them. */
  fieldLabels: Record<string, (obj: KubeObject) => string>
}

/** Key of a type's storage bucket, shared by all versions of one group/resource. */
export function bucketOf(type: ResourceType): string {
  return `${type.group}/${type.resource}`
}

/** `v1` or `group/version`, as in apiVersion. */
export function groupVersion(type: {group: string; version: string}): string {
  return type.group === '' ? type.version : `${type.group}/${type.version}`
}

const age: PrinterColumn = {
  name: 'Age',
  type: 'string',
  description: 'CreationTimestamp is a timestamp representing the server time when this object was created.',
  value: (obj, now) => humanAge(String(obj.metadata.creationTimestamp ?? ''), now),
}

function dig(obj: unknown, ...path: string[]): unknown {
  let node = obj
  for (const key of path) node = typeof node === 'object' && node !== null ? (node as Record<string, unknown>)[key] : undefined
  return node
}

function text(value: unknown): string {
  return value === undefined || value === null ? '' : String(value)
}

function servicePorts(obj: KubeObject): string {
  const ports = (dig(obj, 'spec', 'ports') ?? []) as {port?: number; protocol?: string; nodePort?: number}[]
  if (ports.length === 0) return '<none>'
  return ports.map((p) => `${p.port}${p.nodePort ? `:${p.nodePort}` : ''}/${p.protocol ?? 'TCP'}`).join(',')
}

/** kubectl's EXTERNAL-IP: a LoadBalancer's ingress addresses and external IPs, `<pending>` while it has none. */
function serviceExternalIP(obj: KubeObject): string {
  const external = (dig(obj, 'spec', 'externalIPs') ?? []) as string[]
  if (dig(obj, 'spec', 'type') !== 'LoadBalancer') return external.join(',') || '<none>'
  const ingress = ((dig(obj, 'status', 'loadBalancer', 'ingress') ?? []) as {ip?: string; hostname?: string}[]).map((i) => i.ip ?? i.hostname ?? '')
  const all = [...ingress.filter((ip) => ip !== ''), ...external]
  return all.length > 0 ? all.join(',') : '<pending>'
}

function sliceEndpoints(obj: KubeObject): string {
  const endpoints = (dig(obj, 'endpoints') ?? []) as {addresses?: string[]}[]
  const addresses = endpoints.flatMap((e) => e.addresses ?? [])
  if (addresses.length === 0) return '<unset>'
  const shown = addresses.slice(0, 3).join(',')
  return addresses.length > 3 ? `${shown} + ${addresses.length - 3} more...` : shown
}

function slicePorts(obj: KubeObject): string {
  const ports = (dig(obj, 'ports') ?? []) as {port?: number}[]
  if (ports.length === 0) return '<unset>'
  return ports.map((p) => (p.port === undefined ? '<unset>' : String(p.port))).join(',')
}

const eventFields: Record<string, (obj: KubeObject) => string> = {
  'involvedObject.kind': (o) => text(dig(o, 'involvedObject', 'kind')),
  'involvedObject.namespace': (o) => text(dig(o, 'involvedObject', 'namespace')),
  'involvedObject.name': (o) => text(dig(o, 'involvedObject', 'name')),
  'involvedObject.uid': (o) => text(dig(o, 'involvedObject', 'uid')),
  'involvedObject.apiVersion': (o) => text(dig(o, 'involvedObject', 'apiVersion')),
  'involvedObject.resourceVersion': (o) => text(dig(o, 'involvedObject', 'resourceVersion')),
  'involvedObject.fieldPath': (o) => text(dig(o, 'involvedObject', 'fieldPath')),
  reason: (o) => text(o.reason),
  reportingComponent: (o) => text(o.reportingComponent),
  source: (o) => text(dig(o, 'source', 'component')),
  type: (o) => text(o.type),
}

/** The built-in types, in discovery order. */
export function builtinTypes(): ResourceType[] {
  return [
    {
      group: '', version: 'v1', resource: 'namespaces', kind: 'Namespace', listKind: 'NamespaceList', singular: 'namespace',
      namespaced: false, shortNames: ['ns'], categories: [], hasStatus: true, custom: false,
      columns: [{name: 'Status', type: 'string', value: (o) => text(dig(o, 'status', 'phase'))}, age],
      fieldLabels: {'status.phase': (o) => text(dig(o, 'status', 'phase'))},
    },
    {
      group: '', version: 'v1', resource: 'services', kind: 'Service', listKind: 'ServiceList', singular: 'service',
      namespaced: true, shortNames: ['svc'], categories: ['all'], hasStatus: true, custom: false,
      columns: [
        {name: 'Type', type: 'string', value: (o) => text(dig(o, 'spec', 'type'))},
        {name: 'Cluster-IP', type: 'string', value: (o) => text(dig(o, 'spec', 'clusterIP')) || '<none>'},
        {name: 'External-IP', type: 'string', value: serviceExternalIP},
        {name: 'Port(s)', type: 'string', value: servicePorts},
        age,
        {name: 'Selector', type: 'string', priority: 1, value: (o) => Object.entries((dig(o, 'spec', 'selector') ?? {}) as Record<string, string>).map(([k, v]) => `${k}=${v}`).join(',') || '<none>'},
      ],
      fieldLabels: {'spec.clusterIP': (o) => text(dig(o, 'spec', 'clusterIP')), 'spec.type': (o) => text(dig(o, 'spec', 'type'))},
    },
    {
      group: '', version: 'v1', resource: 'events', kind: 'Event', listKind: 'EventList', singular: 'event',
      namespaced: true, shortNames: ['ev'], categories: [], hasStatus: false, custom: false,
      columns: [
        {name: 'Last Seen', type: 'string', value: (o, now) => humanAge(text(o.lastTimestamp ?? o.eventTime ?? o.metadata.creationTimestamp), now)},
        {name: 'Type', type: 'string', value: (o) => text(o.type)},
        {name: 'Reason', type: 'string', value: (o) => text(o.reason)},
        {name: 'Object', type: 'string', value: (o) => `${text(dig(o, 'involvedObject', 'kind')).toLowerCase()}/${text(dig(o, 'involvedObject', 'name'))}`},
        {name: 'Message', type: 'string', value: (o) => text(o.message)},
      ],
      fieldLabels: eventFields,
    },
    {
      group: 'discovery.k8s.io', version: 'v1', resource: 'endpointslices', kind: 'EndpointSlice', listKind: 'EndpointSliceList',
      singular: 'endpointslice', namespaced: true, shortNames: [], categories: [], hasStatus: false, custom: false,
      columns: [
        {name: 'AddressType', type: 'string', value: (o) => text(o.addressType)},
        {name: 'Ports', type: 'string', value: slicePorts},
        {name: 'Endpoints', type: 'string', value: sliceEndpoints},
        age,
      ],
      fieldLabels: {},
    },
    {
      group: 'coordination.k8s.io', version: 'v1', resource: 'leases', kind: 'Lease', listKind: 'LeaseList', singular: 'lease',
      namespaced: true, shortNames: [], categories: [], hasStatus: false, custom: false,
      columns: [{name: 'Holder', type: 'string', description: 'HolderIdentity contains the identity of the holder of a current lease.', value: (o) => text(dig(o, 'spec', 'holderIdentity'))}, age],
      fieldLabels: {},
    },
    {
      group: 'apiextensions.k8s.io', version: 'v1', resource: 'customresourcedefinitions', kind: 'CustomResourceDefinition',
      listKind: 'CustomResourceDefinitionList', singular: 'customresourcedefinition', namespaced: false,
      shortNames: ['crd', 'crds'], categories: ['api-extensions'], hasStatus: true, custom: false,
      columns: [{name: 'Created At', type: 'date', jsonPath: '.metadata.creationTimestamp', value: (o) => text(o.metadata.creationTimestamp)}],
      fieldLabels: {},
    },
  ]
}

interface CrdVersion {
  name: string
  served?: boolean
  storage?: boolean
  schema?: {openAPIV3Schema?: JsonSchemaProps}
  subresources?: {status?: object}
  additionalPrinterColumns?: {name: string; type: string; format?: string; description?: string; priority?: number; jsonPath: string}[]
  selectableFields?: {jsonPath: string}[]
}

/** One resource type per served version of a CRD. */
export function typesFromCrd(crd: KubeObject): ResourceType[] {
  const spec = crd.spec as {
    group: string
    scope: string
    names: {plural: string; singular?: string; kind: string; listKind?: string; shortNames?: string[]; categories?: string[]}
    versions: CrdVersion[]
  }
  return spec.versions.filter((v) => v.served !== false).map((v) => ({
    group: spec.group,
    version: v.name,
    resource: spec.names.plural,
    kind: spec.names.kind,
    listKind: spec.names.listKind ?? `${spec.names.kind}List`,
    singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
    namespaced: spec.scope === 'Namespaced',
    shortNames: spec.names.shortNames ?? [],
    categories: spec.names.categories ?? [],
    hasStatus: v.subresources?.status !== undefined,
    custom: true,
    schema: v.schema?.openAPIV3Schema,
    columns: v.additionalPrinterColumns
      ? v.additionalPrinterColumns.map((c) => ({...c}))
      : [{name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp'}],
    fieldLabels: Object.fromEntries((v.selectableFields ?? []).map((f) => [f.jsonPath.replace(/^\./, ''), (o: KubeObject) => text(dig(o, ...f.jsonPath.replace(/^\./, '').split('.')))])),
  }))
}
