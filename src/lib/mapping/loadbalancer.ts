/**
 * LoadBalancer Services as exposures: a `type: LoadBalancer` Service of smartnat's class asks for
 * what a Mapping asks for (address, protocol, port -> a target, with allowed sources), so it is
 * turned into a Mapping-shaped object before planning and every feature of Mappings applies to it
 * once. The address is the one recorded in the Service's status (allocation writes it there); a
 * Service with none yet is planned as waiting for one.
 */
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import {MAPPING_GROUP, type MappingResource, type ServiceResource} from './types.js'

/** The spec.loadBalancerClass smartnat serves. */
export const LOAD_BALANCER_CLASS = `${MAPPING_GROUP}/edge`
/** Annotation: the addresses asked for, comma-separated (spec.loadBalancerIP is the deprecated way). */
export const ADDRESSES_ANNOTATION = `${MAPPING_GROUP}/addresses`
/** Annotation: the AddressPool to draw from. */
export const POOL_ANNOTATION = `${MAPPING_GROUP}/pool`
/** Annotation: Services of one namespace with the same key may share an address on disjoint ports. */
export const SHARED_IP_ANNOTATION = `${MAPPING_GROUP}/allow-shared-ip`
/** Annotation: `service` (to the ClusterIP, the default) or `direct` (to the endpoints). */
export const MODE_ANNOTATION = `${MAPPING_GROUP}/mode`

/** The annotations smartnat reads on Services. */
export const SERVICE_ANNOTATIONS = [ADDRESSES_ANNOTATION, POOL_ANNOTATION, SHARED_IP_ANNOTATION, MODE_ANNOTATION] as const

/** The kind of the Mapping-shaped object a Service becomes; no Mapping has it. */
const EXPOSURE_KIND = 'Service'
/**
 * An exposure's name: this prefix, then the Service's. It must be a DNS-1123 subdomain like any
 * Mapping's (the kernel's rule comments carry it), so a Mapping could take it: then the Mapping
 * keeps the name and the Service is not exposed (plan/exposures.ts).
 */
const EXPOSURE_PREFIX = 'svc.'

/** The reason an exposure without a recorded address is not programmed. */
export const WAITING_FOR_ADDRESS = 'no address allocated yet (see the Service\'s Events)'

/** Whether smartnat serves `service` as a load balancer: its class, or no class when it is the default load balancer. */
export function servesLoadBalancer(service: ServiceResource, defaultLoadBalancer: boolean): boolean {
  const spec = service.spec
  if (spec?.type !== 'LoadBalancer') return false
  const lbClass = spec.loadBalancerClass
  return lbClass === LOAD_BALANCER_CLASS || ((lbClass === undefined || lbClass === null) && defaultLoadBalancer)
}

/** The IPv4 addresses recorded in the Service's status.loadBalancer.ingress, in order. */
export function recordedAddresses(service: ServiceResource): Ipv4[] {
  const ingress = service.status?.loadBalancer?.ingress
  if (!Array.isArray(ingress)) return []
  const addresses: Ipv4[] = []
  for (const entry of ingress) {
    const ip = parseIpv4(entry?.ip)
    if (ip !== undefined && !addresses.includes(ip)) addresses.push(ip)
  }
  return addresses
}

/** Whether `mapping` is a Service seen as a Mapping (serviceExposure), not a Mapping. */
export function isServiceExposure(mapping: MappingResource): boolean {
  return mapping.kind === EXPOSURE_KIND
}

/** The name of the Service an exposure stands for, or undefined when `name` is not an exposure's. */
export function exposedServiceName(name: string): string | undefined {
  return name.startsWith(EXPOSURE_PREFIX) ? name.slice(EXPOSURE_PREFIX.length) : undefined
}

const exposures = new WeakMap<ServiceResource, MappingResource>()

/**
 * A served LoadBalancer Service as a Mapping: every Service port on its recorded addresses, to the
 * ClusterIP (or the endpoints with the mode annotation), allowing its loadBalancerSourceRanges.
 * The same Service object always gives the very same exposure, so a planner that keeps results by
 * object identity re-plans it only when the Service changed. Nothing in it is trusted yet: planning validates it.
 */
export function serviceExposure(service: ServiceResource): MappingResource {
  let exposure = exposures.get(service)
  if (exposure === undefined) exposures.set(service, (exposure = toExposure(service)))
  return exposure
}

function toExposure(service: ServiceResource): MappingResource {
  const {namespace, name, uid, creationTimestamp, resourceVersion, deletionTimestamp} = service.metadata ?? {}
  const spec = service.spec ?? {}
  const ports = Array.isArray(spec.ports) ? spec.ports : []
  const mode = service.metadata?.annotations?.[MODE_ANNOTATION]
  return {
    apiVersion: 'v1',
    kind: EXPOSURE_KIND,
    metadata: {
      namespace,
      name: `${EXPOSURE_PREFIX}${typeof name === 'string' ? name : ''}`,
      ...(uid === undefined ? {} : {uid}),
      ...(creationTimestamp === undefined ? {} : {creationTimestamp}),
      ...(resourceVersion === undefined ? {} : {resourceVersion}),
      ...(deletionTimestamp === undefined ? {} : {deletionTimestamp}),
    },
    spec: {
      addresses: recordedAddresses(service),
      ...(spec.loadBalancerSourceRanges === undefined ? {} : {allowedSources: spec.loadBalancerSourceRanges}),
      serviceName: name,
      ...(mode === undefined ? {} : {mode}),
      // Each port keeps its number: the Service port is the external port.
      ports: ports.map((port) => ({port: port?.port, protocol: port?.protocol ?? 'TCP', servicePort: port?.port})),
    },
  }
}
