/** Ready pod addresses of Services, read from discovery.k8s.io/v1 EndpointSlices. */
import {compareIpv4, parseIpv4, type Ipv4} from '../net/ipv4.js'
import {SERVICE_NAME_LABEL, type EndpointSliceResource} from '../mapping/types.js'

/** Looks up the ready pod IPs of a Service by namespace and name. */
export type PodIPLookup = (namespace: string, serviceName: string) => Ipv4[]

/** Indexes ready IPv4 endpoints by Service: deduplicated across slices, sorted numerically. */
export function indexPodIPs(slices: readonly EndpointSliceResource[]): PodIPLookup {
  const byService = new Map<string, Set<Ipv4>>()
  for (const slice of slices) {
    const namespace = slice.metadata?.namespace
    const serviceName = slice.metadata?.labels?.[SERVICE_NAME_LABEL]
    if (typeof namespace !== 'string' || typeof serviceName !== 'string' || slice.addressType !== 'IPv4') continue
    const key = JSON.stringify([namespace, serviceName])
    const ips = byService.get(key) ?? new Set<Ipv4>()
    byService.set(key, ips)
    for (const endpoint of Array.isArray(slice.endpoints) ? slice.endpoints : []) {
      // The API says an unset ready condition means ready; only an explicit false excludes.
      if (endpoint?.conditions?.ready === false || !Array.isArray(endpoint.addresses)) continue
      for (const text of endpoint.addresses) {
        const ip = parseIpv4(text)
        if (ip) ips.add(ip)
      }
    }
  }
  const sorted = new Map([...byService].map(([key, ips]) => [key, [...ips].sort(compareIpv4)]))
  return (namespace, serviceName) => [...(sorted.get(JSON.stringify([namespace, serviceName])) ?? [])]
}
