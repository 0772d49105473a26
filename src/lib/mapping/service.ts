/** Checks a valid Mapping against the Service it names: the Service must exist and take its ports. */
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import type {Protocol, ServiceResource, ValidMappingSpec} from './types.js'

/** The Service port a Mapping port leads to, by the name its EndpointSlice ports carry ('' when unnamed). */
export interface ResolvedServicePort {
  protocol: Protocol
  servicePort: number
  name: string
}

export type ServiceResolution =
  | {
      ok: true
      /** The ClusterIP; always there in mode service, absent for a headless Service in mode direct. */
      serviceVIP?: Ipv4
      /** One per distinct (protocol, servicePort) of the Mapping, in the Mapping's port order. */
      ports: ResolvedServicePort[]
      /** Seconds a client keeps its endpoint (`sessionAffinity: ClientIP`); absent without affinity. */
      affinitySeconds?: number
    }
  | {ok: false; reason: string}

/** Kubernetes' default for `sessionAffinityConfig.clientIP.timeoutSeconds`. */
export const DEFAULT_AFFINITY_SECONDS = 10800
/** The API server's upper bound for the same field: one day. */
const MAX_AFFINITY_SECONDS = 86400

/** Resolves the ClusterIP and the Service ports a Mapping leads to, or the reason it cannot be programmed. */
export function resolveService(namespace: string, spec: ValidMappingSpec, service: ServiceResource | undefined): ServiceResolution {
  if (!service) return {ok: false, reason: `service "${spec.serviceName}" not found in namespace "${namespace}"`}
  const id = `${namespace}/${spec.serviceName}`
  const svc = service.spec ?? {}
  if (svc.type === 'ExternalName') {
    const needs = spec.mode === 'service' ? 'a ClusterIP' : 'EndpointSlices listing its pods'
    return {ok: false, reason: `service ${id} is of type ExternalName; mode ${spec.mode} needs ${needs}`}
  }
  const direct = spec.mode === 'direct'
  if (!direct && svc.clusterIP === 'None') {
    return {ok: false, reason: `service ${id} is headless (clusterIP None); mode service needs a ClusterIP`}
  }
  const serviceVIP = clusterIPv4(svc.clusterIP, svc.clusterIPs)
  if (!serviceVIP && !direct) return {ok: false, reason: `service ${id} has no IPv4 ClusterIP`}
  // Services read from files are not checked by an API server, so their shape is not trusted either.
  const servicePorts = Array.isArray(svc.ports) ? svc.ports : []
  const ports: ResolvedServicePort[] = []
  for (const port of spec.ports) {
    const offered = servicePorts.find((p) => p?.port === port.servicePort && String(p.protocol ?? 'TCP').toLowerCase() === port.protocol)
    if (!offered) return {ok: false, reason: `service ${id} has no ${port.protocol} port ${port.servicePort}`}
    if (ports.some((p) => p.protocol === port.protocol && p.servicePort === port.servicePort)) continue
    ports.push({protocol: port.protocol, servicePort: port.servicePort, name: typeof offered.name === 'string' ? offered.name : ''})
  }
  const affinity = direct ? affinitySeconds(svc) : undefined
  return {ok: true, ...(serviceVIP ? {serviceVIP} : {}), ports, ...(affinity === undefined ? {} : {affinitySeconds: affinity})}
}

// A dual-stack Service whose primary family is IPv6 still carries its IPv4 address in clusterIPs.
function clusterIPv4(clusterIP: string | undefined, clusterIPs: string[] | undefined): Ipv4 | undefined {
  if (clusterIP === 'None') return undefined
  return parseIpv4(clusterIP) ?? (Array.isArray(clusterIPs) ? clusterIPs : []).map((ip) => parseIpv4(ip)).find((ip) => ip !== undefined)
}

// A timeout outside what the API server admits (only possible in files) falls back to the default.
function affinitySeconds(svc: NonNullable<ServiceResource['spec']>): number | undefined {
  if (svc.sessionAffinity !== 'ClientIP') return undefined
  const seconds = svc.sessionAffinityConfig?.clientIP?.timeoutSeconds
  return Number.isInteger(seconds) && seconds! >= 1 && seconds! <= MAX_AFFINITY_SECONDS ? seconds : DEFAULT_AFFINITY_SECONDS
}
