/**
 * Synthetic clusters for the benchmarks: N Mappings with 2 TCP ports and 2 allowed sources each,
 * spread round-robin over 100 external addresses, each Mapping with its own Service and
 * EndpointSlice. Every address is in 198.18.0.0/15.
 */
import {intToIpv4, ipv4ToInt, parseIpv4, type Ipv4} from '../src/lib/net/ipv4.js'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../src/lib/mapping/types.js'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL} from '../src/lib/mapping/types.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type PlanOptions, type Snapshot} from '../src/lib/plan/model.js'
import type {ApiServer} from '../test/support/apiserver/index.js'

/** Egress SNAT on, so a pod change reaches the kernel (the egress sets) and every kind of set is measured. */
export const BENCH_PLAN_OPTIONS: PlanOptions = {...DEFAULT_PLAN_OPTIONS, snat: true}
export const ADDRESS_COUNT = 100
/** Each Mapping's first port; Mapping i on its address takes FIRST_PORT + 2k and FIRST_PORT + 2k + 1. */
export const FIRST_PORT = 1024
/** Services listen on this port plus the Mapping's port offset, so every DNAT translates the port. */
export const SERVICE_PORT_BASE = 20000
const NAMESPACES = 10
const VIP_BASE = ipv4ToInt('198.19.0.0' as Ipv4)
const POD_BASE = ipv4ToInt('198.19.128.0' as Ipv4)
const POD_SPACE = 32766
const BASE_TIME = Date.parse('2024-01-01T00:00:00Z')

export interface SyntheticOptions {
  /** External interfaces the 100 addresses are spread over (default 2): ext1 198.18.0.0/24, ext2 198.18.2.0/24, ... */
  interfaces?: number
}

/** How a synthetic cluster's Mappings reach their pods. */
export type SyntheticMode = 'service' | 'direct'

/** The port every synthetic pod listens on (both Service ports of a Mapping lead to it). */
export const POD_PORT = 8080
/** Pods behind each Service in mode direct: a group of three per Service port. */
export const DIRECT_PODS_PER_SERVICE = 3

/** The host's external interfaces and the 100 addresses on them, in the order Mappings are given them. */
export function syntheticHost(options: SyntheticOptions = {}): {host: HostInfo; addresses: Ipv4[]} {
  const count = options.interfaces ?? 2
  if (count < 1 || count > 50) throw new Error(`interfaces must be 1..50, got ${count}`)
  const perInterface = Math.ceil(ADDRESS_COUNT / count)
  const addresses: Ipv4[] = []
  const interfaces = Array.from({length: count}, (_, k) => {
    const mine: Ipv4[] = []
    for (let j = 0; j < perInterface && addresses.length < ADDRESS_COUNT; j++) {
      const address = ip(`198.18.${2 * k}.${10 + j}`)
      mine.push(address)
      addresses.push(address)
    }
    return {name: `ext${k + 1}`, addresses: mine.map((address) => ({address, prefixLength: 24}))}
  })
  return {host: {interfaces}, addresses}
}

/** Where Mapping `i` of a synthetic cluster lands: its address, ports, Service VIP and allowed sources. */
export function syntheticEndpoint(i: number, addresses: readonly Ipv4[]): {
  namespace: string
  name: string
  address: Ipv4
  ports: [number, number]
  servicePorts: [number, number]
  vip: Ipv4
  sources: [string, string]
} {
  const slot = Math.floor(i / addresses.length)
  const port = FIRST_PORT + 2 * slot
  if (port + 1 > 65535) throw new Error(`mapping ${i}: ports run out above ${65535 - FIRST_PORT} Mappings per address`)
  return {
    namespace: `bench-${i % NAMESPACES}`,
    name: `m-${i}`,
    address: addresses[i % addresses.length]!,
    ports: [port, port + 1],
    servicePorts: [SERVICE_PORT_BASE + 2 * slot, SERVICE_PORT_BASE + 2 * slot + 1],
    vip: intToIpv4(VIP_BASE + 1 + i),
    // One /24 and one single host: two prefix lengths in the allow-list, as real lists have.
    sources: [`198.18.${100 + (i % 100)}.0/24`, `198.18.${200 + (i % 50)}.${1 + (Math.floor(i / 50) % 250)}`],
  }
}

/**
 * A snapshot of `count` Mappings, each with its Service and EndpointSlice; Mapping i is created i seconds
 * after the first. In mode direct each Service names its two ports and has three ready pods.
 */
export function syntheticSnapshot(count: number, addresses: readonly Ipv4[], mode: SyntheticMode = 'service'): Snapshot {
  const snapshot: Snapshot = {mappings: [], services: [], endpointSlices: []}
  for (let i = 0; i < count; i++) {
    const {mapping, service, slice} = syntheticObjects(i, addresses, mode)
    snapshot.mappings.push(mapping)
    snapshot.services.push(service)
    snapshot.endpointSlices.push(slice)
  }
  return snapshot
}

/** Mapping `i` of a synthetic cluster with its Service and EndpointSlice, as syntheticSnapshot makes them. */
export function syntheticObjects(i: number, addresses: readonly Ipv4[], mode: SyntheticMode = 'service'): {mapping: MappingResource; service: ServiceResource; slice: EndpointSliceResource} {
  const e = syntheticEndpoint(i, addresses)
  return {
    mapping: mappingOf(i, e, mode),
    service: mode === 'direct' ? directServiceOf(e) : serviceOf(e),
    slice: mode === 'direct' ? directSliceOf(i, e) : sliceOf(i, e),
  }
}

function mappingOf(i: number, e: ReturnType<typeof syntheticEndpoint>, mode: SyntheticMode): MappingResource {
  return {
    apiVersion: MAPPING_API_VERSION,
    kind: 'Mapping',
    metadata: {namespace: e.namespace, name: e.name, generation: 1, creationTimestamp: new Date(BASE_TIME + i * 1000).toISOString().replace('.000Z', 'Z')},
    spec: {
      addresses: [e.address],
      allowedSources: [...e.sources],
      serviceName: e.name,
      mode,
      ports: e.ports.map((port, k) => ({port, protocol: 'tcp', servicePort: e.servicePorts[k]})),
    },
  }
}

function serviceOf(e: ReturnType<typeof syntheticEndpoint>): ServiceResource {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {namespace: e.namespace, name: e.name},
    spec: {type: 'ClusterIP', clusterIP: e.vip, ports: e.servicePorts.map((port) => ({port, protocol: 'TCP', targetPort: POD_PORT}))},
  }
}

// Mode direct matches a Service port to its EndpointSlice port by name.
function directServiceOf(e: ReturnType<typeof syntheticEndpoint>): ServiceResource {
  const ports = e.servicePorts.map((port, k) => ({name: `p${k}`, port, protocol: 'TCP', targetPort: POD_PORT}))
  return {apiVersion: 'v1', kind: 'Service', metadata: {namespace: e.namespace, name: e.name}, spec: {type: 'ClusterIP', clusterIP: e.vip, ports}}
}

function directSliceOf(i: number, e: ReturnType<typeof syntheticEndpoint>): EndpointSliceResource {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {namespace: e.namespace, name: `${e.name}-abcde`, labels: {[SERVICE_NAME_LABEL]: e.name}},
    addressType: 'IPv4',
    ports: e.servicePorts.map((_, k) => ({name: `p${k}`, port: POD_PORT, protocol: 'TCP'})),
    endpoints: directPods(i).map((address) => ({addresses: [address], conditions: {ready: true}})),
  }
}

/** The three ready pods of Service i in mode direct; `generation` shifts them by one address per step. */
export function directPods(i: number, generation = 0): Ipv4[] {
  const first = DIRECT_PODS_PER_SERVICE * i + generation
  return Array.from({length: DIRECT_PODS_PER_SERVICE}, (_, k) => intToIpv4(POD_BASE + 1 + ((first + k) % POD_SPACE)))
}

/** Two ready pods per Service; pod addresses wrap around a /17, which only egress SNAT would notice. */
export function syntheticPods(i: number, generation = 0): [Ipv4, Ipv4] {
  const first = (2 * i + generation) % POD_SPACE
  return [intToIpv4(POD_BASE + 1 + first), intToIpv4(POD_BASE + 1 + ((first + 1) % POD_SPACE))]
}

function sliceOf(i: number, e: ReturnType<typeof syntheticEndpoint>): EndpointSliceResource {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {namespace: e.namespace, name: `${e.name}-abcde`, labels: {[SERVICE_NAME_LABEL]: e.name}},
    addressType: 'IPv4',
    ports: [{name: 'p', port: POD_PORT, protocol: 'TCP'}],
    endpoints: syntheticPods(i).map((address) => ({addresses: [address], conditions: {ready: true}})),
  }
}

/** `base` with the EndpointSlice of Mapping `index` holding `pods`, ready. */
export function withSlice(base: Snapshot, index: number, pods: string[]): Snapshot {
  const endpointSlices = [...base.endpointSlices]
  endpointSlices[index] = {...endpointSlices[index]!, endpoints: pods.map((address) => ({addresses: [address], conditions: {ready: true}}))}
  return {...base, endpointSlices}
}

export type Ports = {port: number; protocol: string; servicePort: number}[]

/** `base` with Mapping `index`'s ports edited, and its Service offering every servicePort they name. */
export function withPorts(base: Snapshot, index: number, edit: (ports: Ports) => Ports): Snapshot {
  const mappings = [...base.mappings]
  const mapping = mappings[index]!
  const ports = edit(mapping.spec!.ports as Ports)
  mappings[index] = {...mapping, spec: {...mapping.spec, ports}}
  // The Service must offer every servicePort the Mapping asks for.
  const services = [...base.services]
  const service = services[index]!
  services[index] = {...service, spec: {...service.spec, ports: ports.map((p) => ({port: p.servicePort, protocol: 'TCP'}))}}
  return {...base, mappings, services}
}

function ip(text: string): Ipv4 {
  const parsed = parseIpv4(text)
  if (!parsed) throw new Error(`not an address: ${text}`)
  return parsed
}

/** Creates `snapshot`'s namespaces, Mappings, Services and EndpointSlices in the test API server, through its object API (no HTTP). */
export function loadIntoApiServer(server: ApiServer, snapshot: Snapshot): void {
  const kinds = {
    mappings: server.types.mappings,
    services: server.types.services,
    endpointSlices: server.types.endpointSlices,
  }
  for (const name of new Set(snapshot.mappings.map((m) => m.metadata.namespace!))) {
    server.api.create(server.types.namespaces, '', {metadata: {name}} as never)
  }
  for (const [kind, objects] of Object.entries(snapshot) as [keyof typeof kinds, {metadata: {namespace?: string}}[]][]) {
    for (const object of objects) server.api.create(kinds[kind], object.metadata.namespace!, structuredClone(object) as never)
  }
}
