/** The file source: Mappings, Services, EndpointSlices, AddressPools and Namespaces (their labels) from YAML manifests on disk. */
import type {NamespaceResource} from '../mapping/namespace.js'
import {ADDRESS_POOL_KIND, type AddressPoolResource} from '../mapping/pool.js'
import {MAPPING_GROUP, type EndpointSliceResource, type MappingResource, type ServiceResource} from '../mapping/types.js'
import type {Snapshot} from '../plan/model.js'
import {readStableManifests, type StableReadOptions} from './stable-read.js'
import {parseYamlDocuments} from './yaml.js'

/**
 * Reads a YAML file, or every *.yaml / *.yml file of a directory (sorted, not recursive), into a
 * Snapshot; each file is read whole (see stable-read.ts), and one that does not parse fails it all.
 */
export async function readManifests(path: string, options: StableReadOptions = {}): Promise<Snapshot> {
  const snapshot: Snapshot & {addressPools: AddressPoolResource[]; namespaces: NamespaceResource[]} = {mappings: [], services: [], endpointSlices: [], addressPools: [], namespaces: []}
  for (const {file, text} of await readStableManifests(path, options)) {
    for (const object of parseManifestText(text, file)) collect(snapshot, object)
  }
  // Snapshots without pools stay as they were (AddressPool-free manifests are the common case).
  const {addressPools, namespaces, ...rest} = snapshot
  return {...rest, ...(addressPools.length > 0 ? {addressPools} : {}), ...(namespaces.length > 0 ? {namespaces} : {})}
}

/**
 * Parses multi-document YAML; a syntax error names the file and line. The YAML 1.2 core schema, as
 * Kubernetes reads manifests: a timestamp stays a string, `yes` stays a string.
 */
export function parseManifestText(text: string, file: string): unknown[] {
  return parseYamlDocuments(text, file).filter((value) => value !== null && value !== undefined)
}

function collect(snapshot: Snapshot, object: unknown): void {
  if (!isObject(object)) return
  const {apiVersion, kind} = object
  if (kind === 'List' && Array.isArray(object.items)) {
    for (const item of object.items) collect(snapshot, item)
    return
  }
  if (!isObject(object.metadata)) return
  const group = typeof apiVersion === 'string' && apiVersion.includes('/') ? apiVersion.split('/')[0] : ''
  // AddressPools are cluster-scoped: they get no namespace.
  if (kind === ADDRESS_POOL_KIND && group === MAPPING_GROUP) {
    snapshot.addressPools!.push(object as unknown as AddressPoolResource)
    return
  }
  if (kind === 'Namespace' && apiVersion === 'v1') {
    snapshot.namespaces!.push(object as unknown as NamespaceResource)
    return
  }
  const withNamespace = {...object, metadata: {namespace: 'default', ...object.metadata}}
  if (kind === 'Mapping' && group === MAPPING_GROUP) snapshot.mappings.push(withNamespace as unknown as MappingResource)
  else if (kind === 'Service' && apiVersion === 'v1') snapshot.services.push(withNamespace as unknown as ServiceResource)
  else if (kind === 'EndpointSlice' && apiVersion === 'discovery.k8s.io/v1') snapshot.endpointSlices.push(withNamespace as unknown as EndpointSliceResource)
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}
