/** The backend-neutral result of planning: what this host must program, and what each Mapping is told. */
import type {Cidr, Ipv4} from '../net/ipv4.js'
import type {MappingResource, EndpointSliceResource, Protocol, ServiceResource} from '../mapping/types.js'
import type {AddressPoolResource} from '../mapping/pool.js'
import type {NamespaceResource} from '../mapping/namespace.js'

/** Everything the planner reads about the cluster. */
export interface Snapshot {
  mappings: MappingResource[]
  services: ServiceResource[]
  endpointSlices: EndpointSliceResource[]
  /** The AddressPools LoadBalancer Services draw from; absent where the source has none. The planner never reads them: allocation does. */
  addressPools?: AddressPoolResource[]
  /** Namespaces with their labels, for AddressPools that select namespaces; absent where the source has none. Allocation reads them, the planner never. */
  namespaces?: NamespaceResource[]
}

/** An address on an external interface, with the prefix of its subnet. */
export interface HostAddress {
  address: Ipv4
  prefixLength: number
}

/** An external interface of this host (already filtered by `--interfaces`). */
export interface HostInterface {
  name: string
  addresses: HostAddress[]
}

export interface HostInfo {
  interfaces: HostInterface[]
  /**
   * Floating addresses planned here though keepalived has not assigned them here now (the peer
   * serves them): in the interfaces for planning, but not this host's to claim in Mapping status.
   */
  floatingStandby?: Ipv4[]
}

export interface PlanOptions {
  /** Largest number of ports a single Mapping may list. */
  maxPortsPerMapping: number
  /** Mark DNATed connections for MASQUERADE on the way to the cluster. */
  masquerade: boolean
  /** Make connections started by a Mapping's pods leave with the Mapping's address. */
  snat: boolean
  /** Which host of each external subnet is the gateway: 1 = first host, -1 = last before broadcast. */
  gwOffset: number
  /** Interface whose replies follow the main routing table; it gets no table of its own. */
  defaultGwInterface?: string
  /** The floating cluster-side address of an HA pair: connections to the cluster leave from it instead of being masqueraded. */
  clusterAddress?: Ipv4
}

export const DEFAULT_PLAN_OPTIONS: PlanOptions = {
  maxPortsPerMapping: 50,
  masquerade: true,
  snat: false,
  gwOffset: 1,
}

/** One pod a direct-mode group spreads connections over: its address and the port it listens on. */
export interface NatGroupMember {
  ip: Ipv4
  port: number
}

/**
 * Where a direct-mode Mapping sends new connections for one Service port: that port's endpoints.
 * Every address and port of the Mapping leading to the Service port shares the group, so an
 * endpoint change rewrites the group and nothing that leads to it.
 */
export interface NatGroup {
  /** `namespace/name protocol/servicePort`, unique in a model and stable while the Mapping keeps the port. */
  id: string
  /** The ready endpoints, else the serving terminating ones; sorted by address, then port. Empty: new connections are refused. */
  members: NatGroupMember[]
  /** True when no endpoint is ready and the members are serving terminating ones. */
  terminating: boolean
  /** Seconds a client keeps its endpoint (`sessionAffinity: ClientIP`); absent without affinity. */
  affinitySeconds?: number
}

/** One external endpoint of a Mapping on this host: address:port/protocol -> target. */
export type NatEndpoint = ServiceEndpoint | DirectEndpoint

/** An endpoint of a `service`-mode Mapping: DNAT to the ClusterIP and the Service port. */
export interface ServiceEndpoint {
  address: Ipv4
  protocol: Protocol
  port: number
  targetIP: Ipv4
  targetPort: number
  group?: undefined
}

/** An endpoint of a `direct`-mode Mapping: DNAT to one member of a group. */
export interface DirectEndpoint {
  address: Ipv4
  protocol: Protocol
  port: number
  group: NatGroup
  targetIP?: undefined
  targetPort?: undefined
}

/** A valid Mapping with at least one address local to this host. */
export interface NatMapping {
  namespace: string
  name: string
  /** External interface each local address lives on, sorted by address. */
  addresses: {address: Ipv4; interface: string}[]
  allowedSources: Cidr[]
  /** The ClusterIP; absent only for a headless Service in mode direct. */
  serviceVIP?: Ipv4
  /**
   * The pods in use (sorted), for status, conntrack cleanup and egress SNAT: the Service's ready
   * endpoints in mode service, the members of the groups in mode direct.
   */
  podIPs: Ipv4[]
  /** Sorted by address, protocol, port. */
  endpoints: NatEndpoint[]
  /** Mode direct only (its mark): the groups the endpoints lead to, one per Service port, by protocol then Service port. */
  groups?: NatGroup[]
}

/** An external interface with the routing table that carries replies back out of it. */
export interface NatInterface {
  name: string
  /** 1..255; also the value of the interface's bits in the connection mark. */
  index: number
  /** Routing table id; undefined for the default-gateway interface (main table). */
  table?: number
  /** Connected subnets (network/len with the source address to use). */
  subnets: {cidr: Cidr; source: Ipv4}[]
  gateway?: Ipv4
}

/** An external interface this host cannot serve, and why (e.g. its gateway is its own address). */
export interface InterfaceFault {
  interface: string
  reason: string
}

/** Egress SNAT: pods that leave through `interface` with source `address`. */
export interface NatEgress {
  address: Ipv4
  interface: string
  podIPs: Ipv4[]
  /** Mappings that contributed, for comments. */
  mappings: string[]
}

export interface NatModel {
  /** Sorted by namespace/name. */
  mappings: NatMapping[]
  /** Sorted by name. */
  interfaces: NatInterface[]
  /** Sorted by address. */
  egress: NatEgress[]
  masquerade: boolean
  /** With masquerade: the one source address (an HA pair's floating cluster-side address) instead of the outgoing interface's own. */
  masqueradeTo?: Ipv4
}

/** What planning concluded for one Mapping; the status writer and the CLI both read it. */
export interface MappingVerdict {
  namespace: string
  name: string
  generation?: number
  valid: boolean
  /** "no" when valid, otherwise the human reason (status.invalid). */
  invalid: string
  serviceVIP?: Ipv4
  /** Local addresses programmed for this Mapping, each with the ready pod IPs. */
  configuredAddresses: Record<string, {podIPs: Ipv4[]}>
  /** Valid addresses of the Mapping that are not on this host's external interfaces. */
  notLocalAddresses: Ipv4[]
  /** Mode direct: the Mapping's ports whose Service port has no endpoint to serve, so new connections are refused; absent when none. */
  unservedPorts?: {protocol: Protocol; port: number}[]
  /**
   * Addresses on this host that it cannot serve, each with the reason (an interface it cannot
   * route replies out of, forwarded traffic dropped); absent when there are none.
   */
  faults?: Record<string, string>
  /** The Mapping's deletionTimestamp: it is being deleted (finalizers hold it) and is no longer served. */
  deleting?: string
}

export interface Plan {
  model: NatModel
  /** Sorted by namespace/name. */
  verdicts: MappingVerdict[]
  /** External interfaces left out of the model, sorted by name; their addresses are in the verdicts' faults. */
  interfaceFaults: InterfaceFault[]
}
