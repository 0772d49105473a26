/** Defaulting and validation that kube-apiserver applies per type before an object is stored. */
import type {StatusCause} from './errors.js'
import type {ResourceType} from './resources.js'
import {applyDefaults, pruneUnknownFields, validateSchema} from './schema.js'
import type {KubeObject} from './store.js'

const DNS1123_LABEL = '[a-z0-9]([-a-z0-9]*[a-z0-9])?'
const DNS1123_SUBDOMAIN = `${DNS1123_LABEL}(\\.${DNS1123_LABEL})*`
const DNS1035_LABEL = '[a-z]([-a-z0-9]*[a-z0-9])?'

type Obj = Record<string, unknown>

function isObject(value: unknown): value is Obj {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Checks metadata.name the way each type's registry strategy does. */
export function validateName(type: ResourceType, name: string): StatusCause[] {
  const field = 'metadata.name'
  if (name === '') return [{reason: 'FieldValueRequired', message: 'Required value: name or generateName is required', field}]
  if (type.resource === 'namespaces') {
    if (name.length > 63 || !new RegExp(`^${DNS1123_LABEL}$`).test(name)) {
      return [{reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '${DNS1123_LABEL}')`}]
    }
  } else if (type.resource === 'services') {
    if (name.length > 63 || !new RegExp(`^${DNS1035_LABEL}$`).test(name)) {
      return [{reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '${DNS1035_LABEL}')`}]
    }
  } else if (name.length > 253 || !new RegExp(`^${DNS1123_SUBDOMAIN}$`).test(name)) {
    return [{reason: 'FieldValueInvalid', field, message: `Invalid value: "${name}": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '${DNS1123_SUBDOMAIN}')`}]
  }
  return []
}

/** Result of decoding a custom resource against its schema: unknown fields are pruned and listed. */
export interface CustomCheck {
  unknownFields: string[]
  causes: StatusCause[]
}

/** Defaults, prunes and validates a custom resource against its version's structural schema. */
export function admitCustom(type: ResourceType, obj: KubeObject): CustomCheck {
  if (!type.schema) return {unknownFields: [], causes: []}
  applyDefaults(obj, type.schema)
  const unknownFields = pruneUnknownFields(obj, type.schema)
  const body: Record<string, unknown> = {...obj}
  delete body.metadata
  delete body.apiVersion
  delete body.kind
  return {unknownFields, causes: validateSchema(body, {...type.schema, required: (type.schema.required ?? []).filter((r) => r !== 'metadata')})}
}

/** Allocates Service cluster IPs from 10.96.0.0/12 the way the default service CIDR would, never reusing one in use. */
export class ClusterIpAllocator {
  private next = 10

  allocate(inUse: Set<string>): string {
    for (;;) {
      const n = this.next++
      const ip = `10.${96 + (n >> 16)}.${(n >> 8) & 255}.${n & 255}`
      if (!inUse.has(ip)) return ip
    }
  }
}

/** Built-in defaulting and validation; `old` is the stored object on update. */
export function admitBuiltin(type: ResourceType, obj: KubeObject, old: KubeObject | undefined, allocateIp: () => string): StatusCause[] {
  switch (type.resource) {
    case 'namespaces':
      obj.spec = {finalizers: ['kubernetes'], ...(isObject(obj.spec) ? obj.spec : {})}
      obj.status = {phase: 'Active'}
      obj.metadata.labels = {...(obj.metadata.labels as Obj | undefined), 'kubernetes.io/metadata.name': obj.metadata.name}
      return []
    case 'services':
      return admitService(obj, old, allocateIp)
    case 'endpointslices':
      return validateEndpointSlice(obj)
    case 'customresourcedefinitions':
      return admitCrd(obj, old)
    case 'leases':
      return validateLease(obj)
    default:
      return []
  }
}

function admitService(obj: KubeObject, old: KubeObject | undefined, allocateIp: () => string): StatusCause[] {
  const spec: Obj = isObject(obj.spec) ? obj.spec : {}
  obj.spec = spec
  const oldSpec = isObject(old?.spec) ? old.spec : undefined
  spec.type ??= 'ClusterIP'
  spec.sessionAffinity ??= 'None'
  const causes: StatusCause[] = []
  const ports = Array.isArray(spec.ports) ? spec.ports : []
  ports.forEach((p: unknown, i) => {
    if (!isObject(p)) return
    p.protocol ??= 'TCP'
    p.targetPort ??= p.port
    if (!Number.isInteger(p.port) || (p.port as number) < 1 || (p.port as number) > 65535) {
      causes.push({reason: 'FieldValueInvalid', field: `spec.ports[${i}].port`, message: `Invalid value: ${JSON.stringify(p.port)}: must be between 1 and 65535, inclusive`})
    }
    if (!['TCP', 'UDP', 'SCTP'].includes(String(p.protocol))) {
      causes.push({reason: 'FieldValueNotSupported', field: `spec.ports[${i}].protocol`, message: `Unsupported value: ${JSON.stringify(p.protocol)}: supported values: "SCTP", "TCP", "UDP"`})
    }
  })
  causes.push(...loadBalancerClassCauses(spec, oldSpec))
  if (spec.type === 'ExternalName') return causes
  if (ports.length === 0 && spec.clusterIP !== 'None') causes.push({reason: 'FieldValueRequired', field: 'spec.ports', message: 'Required value'})
  if (oldSpec?.clusterIP !== undefined && spec.clusterIP !== undefined && spec.clusterIP !== oldSpec.clusterIP) {
    causes.push({reason: 'FieldValueInvalid', field: 'spec.clusterIP', message: `Invalid value: ${JSON.stringify(spec.clusterIP)}: field is immutable`})
  }
  spec.clusterIP ??= oldSpec?.clusterIP ?? allocateIp()
  spec.clusterIPs ??= [spec.clusterIP]
  spec.ipFamilies ??= ['IPv4']
  spec.ipFamilyPolicy ??= 'SingleStack'
  spec.internalTrafficPolicy ??= 'Cluster'
  obj.status ??= {loadBalancer: {}}
  return causes
}

/** As kube-apiserver: a class only on a LoadBalancer, and fixed once set. */
function loadBalancerClassCauses(spec: Obj, oldSpec: Obj | undefined): StatusCause[] {
  const field = 'spec.loadBalancerClass'
  if (spec.loadBalancerClass === undefined || spec.loadBalancerClass === null) {
    if (oldSpec?.type === 'LoadBalancer' && spec.type === 'LoadBalancer' && typeof oldSpec.loadBalancerClass === 'string') {
      return [{reason: 'FieldValueInvalid', field, message: 'Invalid value: "null": may not change once set'}]
    }
    return []
  }
  if (spec.type !== 'LoadBalancer') return [{reason: 'FieldValueForbidden', field, message: "Forbidden: may only be used when `type` is 'LoadBalancer'"}]
  if (typeof spec.loadBalancerClass !== 'string' || !/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(spec.loadBalancerClass)) {
    return [{reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(spec.loadBalancerClass)}: must be a label-style value with an optional DNS prefix`}]
  }
  if (oldSpec?.type === 'LoadBalancer' && oldSpec.loadBalancerClass !== spec.loadBalancerClass) {
    return [{reason: 'FieldValueInvalid', field, message: `Invalid value: ${JSON.stringify(spec.loadBalancerClass)}: may not change once set`}]
  }
  return []
}

function validateEndpointSlice(obj: KubeObject): StatusCause[] {
  const causes: StatusCause[] = []
  if (!['IPv4', 'IPv6', 'FQDN'].includes(String(obj.addressType))) {
    causes.push(obj.addressType === undefined
      ? {reason: 'FieldValueRequired', field: 'addressType', message: 'Required value'}
      : {reason: 'FieldValueNotSupported', field: 'addressType', message: `Unsupported value: ${JSON.stringify(obj.addressType)}: supported values: "FQDN", "IPv4", "IPv6"`})
  }
  const endpoints = Array.isArray(obj.endpoints) ? obj.endpoints : []
  endpoints.forEach((e: unknown, i) => {
    const addresses = isObject(e) && Array.isArray(e.addresses) ? e.addresses : []
    if (addresses.length !== 1) {
      causes.push({reason: 'FieldValueRequired', field: `endpoints[${i}].addresses`, message: 'Required value: must contain at least 1 address'})
    }
  })
  const ports = Array.isArray(obj.ports) ? obj.ports : []
  ports.forEach((p: unknown, i) => {
    if (isObject(p) && p.port !== undefined && (!Number.isInteger(p.port) || (p.port as number) < 0 || (p.port as number) > 65535)) {
      causes.push({reason: 'FieldValueInvalid', field: `ports[${i}].port`, message: `Invalid value: ${JSON.stringify(p.port)}: must be between 0 and 65535, inclusive`})
    }
  })
  return causes
}

function validateLease(obj: KubeObject): StatusCause[] {
  const spec: Obj = isObject(obj.spec) ? obj.spec : {}
  const causes: StatusCause[] = []
  const positive = (field: string, least: number, words: string) => {
    const value = spec[field]
    if (value !== undefined && (!Number.isInteger(value) || (value as number) < least)) {
      causes.push({reason: 'FieldValueInvalid', field: `spec.${field}`, message: `Invalid value: ${JSON.stringify(value)}: ${words}`})
    }
  }
  positive('leaseDurationSeconds', 1, 'must be greater than 0')
  positive('leaseTransitions', 0, 'must be greater than or equal to 0')
  return causes
}

function admitCrd(obj: KubeObject, old: KubeObject | undefined): StatusCause[] {
  const spec = isObject(obj.spec) ? obj.spec : {}
  const names = isObject(spec.names) ? spec.names : {}
  const versions = Array.isArray(spec.versions) ? (spec.versions as Obj[]) : []
  const causes: StatusCause[] = []
  if (obj.metadata.name !== `${String(names.plural)}.${String(spec.group)}`) {
    causes.push({reason: 'FieldValueInvalid', field: 'metadata.name', message: `Invalid value: "${obj.metadata.name}": must be spec.names.plural+"."+spec.group`})
  }
  if (spec.scope !== 'Namespaced' && spec.scope !== 'Cluster') {
    causes.push({reason: 'FieldValueNotSupported', field: 'spec.scope', message: `Unsupported value: ${JSON.stringify(spec.scope)}: supported values: "Cluster", "Namespaced"`})
  }
  if (typeof names.kind !== 'string' || names.kind === '') causes.push({reason: 'FieldValueRequired', field: 'spec.names.kind', message: 'Required value'})
  if (versions.filter((v) => v.storage === true).length !== 1) {
    causes.push({reason: 'FieldValueInvalid', field: 'spec.versions', message: `Invalid value: ${JSON.stringify(versions)}: must have exactly one version marked as storage version`})
  }
  versions.forEach((v, i) => {
    const schema = isObject(v.schema) ? v.schema.openAPIV3Schema : undefined
    if (!isObject(schema)) causes.push({reason: 'FieldValueRequired', field: `spec.versions[${i}].schema.openAPIV3Schema`, message: 'Required value: schemas are required'})
  })
  if (old && isObject(old.spec) && old.spec.group !== spec.group) {
    causes.push({reason: 'FieldValueInvalid', field: 'spec.group', message: `Invalid value: ${JSON.stringify(spec.group)}: field is immutable`})
  }
  if (causes.length > 0) return causes
  const now = new Date().toISOString().replace(/\.\d{3}Z$/, 'Z')
  const accepted = {...names, listKind: names.listKind ?? `${String(names.kind)}List`, singular: names.singular ?? String(names.kind).toLowerCase()}
  const condition = (type: string, reason: string, message: string) => ({type, status: 'True', lastTransitionTime: now, reason, message})
  obj.status = {
    acceptedNames: accepted,
    conditions: [
      condition('NamesAccepted', 'NoConflicts', 'no conflicts found'),
      condition('Established', 'InitialNamesAccepted', 'the initial names have been accepted'),
    ],
    storedVersions: versions.filter((v) => v.storage === true).map((v) => v.name),
  }
  return []
}
