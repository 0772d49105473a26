/** Checks a valid Mapping against the Service it names: the Service must exist and take its ports. */
import {parseIpv4, type Ipv4} from '../net/ipv4.js'
import type {ServiceResource, ValidMappingSpec} from './types.js'

export type ServiceResolution = {ok: true; serviceVIP: Ipv4} | {ok: false; reason: string}

/** Resolves the ClusterIP a `service`-mode Mapping DNATs to, or the reason it cannot. */
export function resolveService(namespace: string, spec: ValidMappingSpec, service: ServiceResource | undefined): ServiceResolution {
  if (!service) return {ok: false, reason: `service "${spec.serviceName}" not found in namespace "${namespace}"`}
  const id = `${namespace}/${spec.serviceName}`
  const svc = service.spec ?? {}
  if (svc.type === 'ExternalName') {
    return {ok: false, reason: `service ${id} is of type ExternalName; mode service needs a ClusterIP`}
  }
  if (svc.clusterIP === 'None') {
    return {ok: false, reason: `service ${id} is headless (clusterIP None); mode service needs a ClusterIP`}
  }
  const serviceVIP = clusterIPv4(svc.clusterIP, svc.clusterIPs)
  if (!serviceVIP) return {ok: false, reason: `service ${id} has no IPv4 ClusterIP`}
  // Services read from files are not checked by an API server, so their shape is not trusted either.
  const servicePorts = Array.isArray(svc.ports) ? svc.ports : []
  for (const port of spec.ports) {
    const offered = servicePorts.some(
      (p) => p?.port === port.servicePort && String(p.protocol ?? 'TCP').toLowerCase() === port.protocol,
    )
    if (!offered) return {ok: false, reason: `service ${id} has no ${port.protocol} port ${port.servicePort}`}
  }
  return {ok: true, serviceVIP}
}

// A dual-stack Service whose primary family is IPv6 still carries its IPv4 address in clusterIPs.
function clusterIPv4(clusterIP: string | undefined, clusterIPs: string[] | undefined): Ipv4 | undefined {
  return parseIpv4(clusterIP) ?? (Array.isArray(clusterIPs) ? clusterIPs : []).map((ip) => parseIpv4(ip)).find((ip) => ip !== undefined)
}
