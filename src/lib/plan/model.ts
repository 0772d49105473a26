/** The backend-neutral result of planning: what this host must program, and what each Mapping is told. */
import type {Cidr, Ipv4} from '../net/ipv4.js'
import type {MappingResource, EndpointSliceResource, Protocol, ServiceResource} from '../mapping/types.js'

/** Everything the planner reads about the cluster. */
export interface Snapshot {
  mappings: MappingResource[]
  services: ServiceResource[]
  endpointSlices: EndpointSliceResource[]
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
}

export const DEFAULT_PLAN_OPTIONS: PlanOptions = {
  maxPortsPerMapping: 50,
  masquerade: true,
  snat: false,
  gwOffset: 1,
}

/** One external endpoint of a Mapping on this host: address:port/protocol -> target. */
export interface NatEndpoint {
  address: Ipv4
  protocol: Protocol
  port: number
  targetIP: Ipv4
  targetPort: number
}

/** A valid Mapping with at least one address local to this host. */
export interface NatMapping {
  namespace: string
  name: string
  /** External interface each local address lives on, sorted by address. */
  addresses: {address: Ipv4; interface: string}[]
  allowedSources: Cidr[]
  serviceVIP: Ipv4
  /** Ready endpoint addresses of the Service (sorted), for status, conntrack cleanup and egress SNAT. */
  podIPs: Ipv4[]
  /** Sorted by address, protocol, port. */
  endpoints: NatEndpoint[]
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
  /**
   * Addresses on this host that it cannot serve, each with the reason (an interface it cannot
   * route replies out of, forwarded traffic dropped); absent when there are none.
   */
  faults?: Record<string, string>
}

export interface Plan {
  model: NatModel
  /** Sorted by namespace/name. */
  verdicts: MappingVerdict[]
  /** External interfaces left out of the model, sorted by name; their addresses are in the verdicts' faults. */
  interfaceFaults: InterfaceFault[]
}
