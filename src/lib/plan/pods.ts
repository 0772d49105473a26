/** Ready pod addresses of Services, read from discovery.k8s.io/v1 EndpointSlices. */
import {compareIpv4, parseIpv4, type Ipv4} from '../net/ipv4.js'
import {SERVICE_NAME_LABEL, type EndpointSliceResource} from '../mapping/types.js'

/** Looks up the ready pod IPs of a Service by namespace and name. */
export type PodIPLookup = (namespace: string, serviceName: string) => Ipv4[]

/** Indexes ready IPv4 endpoints by Service: deduplicated across slices, sorted numerically. */
export function indexPodIPs(slices: readonly EndpointSliceResource[]): PodIPLookup {
  // By namespace, then Service name: no key text to build for each of tens of thousands of slices.
  const byService = new Map<string, Map<string, Set<Ipv4>>>()
  for (const slice of slices) {
    const namespace = slice.metadata?.namespace
    const serviceName = slice.metadata?.labels?.[SERVICE_NAME_LABEL]
    if (typeof namespace !== 'string' || typeof serviceName !== 'string' || slice.addressType !== 'IPv4') continue
    const services = byService.get(namespace) ?? new Map<string, Set<Ipv4>>()
    byService.set(namespace, services)
    const ips = services.get(serviceName) ?? new Set<Ipv4>()
    services.set(serviceName, ips)
    for (const endpoint of Array.isArray(slice.endpoints) ? slice.endpoints : []) {
      // The API says an unset ready condition means ready; only an explicit false excludes.
      if (endpoint?.conditions?.ready === false || !Array.isArray(endpoint?.addresses)) continue
      for (const text of endpoint.addresses) {
        const ip = parseIpv4(text)
        if (ip) ips.add(ip)
      }
    }
  }
  // Sorted when first looked up: most Services of a cluster have no Mapping.
  const sorted = new Map<Set<Ipv4>, Ipv4[]>()
  return (namespace, serviceName) => {
    const ips = byService.get(namespace)?.get(serviceName)
    if (ips === undefined) return []
    let list = sorted.get(ips)
    if (list === undefined) sorted.set(ips, (list = [...ips].sort(compareIpv4)))
    return [...list]
  }
}
