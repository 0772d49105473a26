/** The Mapping resource (smartnat.aureacentral.com/v1alpha1) and the Kubernetes objects it refers to. */
import type {Cidr, Ipv4} from '../net/ipv4.js'

export const MAPPING_GROUP = 'smartnat.aureacentral.com'
export const MAPPING_VERSION = 'v1alpha1'
export const MAPPING_API_VERSION = `${MAPPING_GROUP}/${MAPPING_VERSION}`

export interface ObjectMeta {
  name?: string
  namespace?: string
  uid?: string
  resourceVersion?: string
  generation?: number
  creationTimestamp?: string
  /** Set by the API server when the object was deleted while finalizers remain on it. */
  deletionTimestamp?: string
  finalizers?: string[]
  labels?: Record<string, string>
  annotations?: Record<string, string>
}

/** A Mapping as read from YAML or the API: nothing in spec is trusted until validated. */
export interface MappingResource {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec?: {
    addresses?: unknown
    /** The AddressPool to draw an address from, when `addresses` is left empty. */
    addressPool?: unknown
    allowedSources?: unknown
    serviceName?: unknown
    mode?: unknown
    ports?: unknown
  }
  status?: MappingStatus
  /**
   * Not part of the resource: set before planning (allocate/pending.ts) on a Mapping that asks for
   * an address or a port and holds none this instance may plan on, saying why.
   */
  pending?: string
}

export interface MappingCondition {
  type: 'Valid' | 'Ready'
  status: 'True' | 'False' | 'Unknown'
  reason: string
  message: string
  lastTransitionTime?: string
  observedGeneration?: number
}

export interface MappingStatus {
  invalid?: string
  serviceVIP?: string
  /**
   * Per external address some instance serves: the pods behind it and the instance (host name) that
   * wrote it; `fault` when that instance has the address but cannot serve it, and why.
   */
  configuredAddresses?: Record<string, {podIPs: string[]; host?: string; fault?: string}>
  conditions?: MappingCondition[]
  observedGeneration?: number
  /** What allocation gave a Mapping that asks for an address or a port (allocate/mappings.ts); untrusted until read by mapping/dynamic.ts. */
  allocated?: AllocatedRecord
}

/** status.allocated: the addresses a Mapping's ports are on (from `pool`, or its own), and the port each port left empty got. */
export interface AllocatedRecord {
  pool?: string
  addresses: string[]
  /** One per spec port without `port`, which its protocol and servicePort identify. */
  ports: {protocol: string; servicePort: number; port: number}[]
}

export type Protocol = 'tcp' | 'udp'
export type MappingMode = 'service' | 'direct'

export interface PortMapping {
  port: number
  protocol: Protocol
  servicePort: number
}

/** A Mapping whose spec passed validation, with defaults applied. */
export interface ValidMappingSpec {
  addresses: Ipv4[]
  allowedSources: Cidr[]
  serviceName: string
  mode: MappingMode
  ports: PortMapping[]
}

export interface ServicePort {
  name?: string
  port: number
  protocol?: string
  targetPort?: number | string
}

export interface ServiceResource {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  spec?: {
    type?: string
    clusterIP?: string
    clusterIPs?: string[]
    ports?: ServicePort[]
    externalName?: string
    sessionAffinity?: string
    sessionAffinityConfig?: {clientIP?: {timeoutSeconds?: number}}
    loadBalancerClass?: string
    /** Deprecated by Kubernetes, still honoured: the address asked for. */
    loadBalancerIP?: string
    loadBalancerSourceRanges?: string[]
  }
  status?: {loadBalancer?: {ingress?: LoadBalancerIngress[]}}
}

/** One entry of a Service's status.loadBalancer.ingress. */
export interface LoadBalancerIngress {
  ip?: string
  hostname?: string
  ipMode?: 'VIP' | 'Proxy'
  ports?: {port: number; protocol: string; error?: string}[]
}

export interface EndpointSliceResource {
  apiVersion?: string
  kind?: string
  metadata: ObjectMeta
  addressType?: string
  endpoints?: {
    addresses: string[]
    conditions?: {ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null}
    nodeName?: string
    targetRef?: {kind?: string; name?: string; namespace?: string}
  }[]
  ports?: {name?: string; port?: number; protocol?: string}[]
}

/** Label that ties an EndpointSlice to its Service. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name'
