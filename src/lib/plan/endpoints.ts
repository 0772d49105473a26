/** The endpoints of a Service port, read from discovery.k8s.io/v1 EndpointSlices as kube-proxy reads them, for mode direct. */
import {compareIpv4, ipv4ToInt, parseIpv4, type Ipv4} from '../net/ipv4.js'
import {SERVICE_NAME_LABEL, type EndpointSliceResource, type Protocol} from '../mapping/types.js'
import type {NatGroupMember} from './model.js'

/** Which endpoints new connections may reach: the ready ones, else the serving terminating ones (KEP-1669). */
export interface EndpointChoice {
  members: NatGroupMember[]
  terminating: boolean
}

/** Looks up the endpoints of a Service port by namespace, Service name, port name ('' when unnamed) and protocol. */
export type EndpointLookup = (namespace: string, serviceName: string, portName: string, protocol: Protocol) => EndpointChoice

/** Every address any EndpointSlice of a Service lists, whatever its conditions: a pod still listed keeps its connections. */
export type ListedIPLookup = (namespace: string, serviceName: string) => Ipv4[]

interface Candidate {
  ip: Ipv4
  port: number
  ready: boolean
  servingTerminating: boolean
}

/** Indexes IPv4 EndpointSlices by Service; endpoints are resolved per Service port when first looked up. */
export function indexEndpoints(slices: readonly EndpointSliceResource[]): {endpointsOf: EndpointLookup; listedIPsOf: ListedIPLookup} {
  const byService = new Map<string, Map<string, EndpointSliceResource[]>>()
  for (const slice of slices) {
    // Slices read from files are not checked by an API server: anything may be in the list.
    if (typeof slice !== 'object' || slice === null) continue
    const namespace = slice.metadata?.namespace
    const serviceName = slice.metadata?.labels?.[SERVICE_NAME_LABEL]
    if (typeof namespace !== 'string' || typeof serviceName !== 'string' || slice.addressType !== 'IPv4') continue
    const services = byService.get(namespace) ?? new Map<string, EndpointSliceResource[]>()
    byService.set(namespace, services)
    const list = services.get(serviceName) ?? []
    services.set(serviceName, list)
    list.push(slice)
  }
  const slicesOf = (namespace: string, serviceName: string) => byService.get(namespace)?.get(serviceName) ?? []
  const chosen = new Map<string, EndpointChoice>()
  const endpointsOf: EndpointLookup = (namespace, serviceName, portName, protocol) => {
    const key = `${namespace}/${serviceName}/${protocol}/${portName}`
    let choice = chosen.get(key)
    if (choice === undefined) chosen.set(key, (choice = choose(candidates(slicesOf(namespace, serviceName), portName, protocol))))
    return {members: choice.members.map((m) => ({...m})), terminating: choice.terminating}
  }
  const listedIPsOf: ListedIPLookup = (namespace, serviceName) => {
    const ips = new Set<Ipv4>()
    for (const slice of slicesOf(namespace, serviceName)) {
      for (const endpoint of endpointList(slice)) {
        const ip = firstAddress(endpoint)
        if (ip) ips.add(ip)
      }
    }
    return [...ips].sort(compareIpv4)
  }
  return {endpointsOf, listedIPsOf}
}

/** Endpoints of one Service port over all of its slices, once per (address, port), the best conditions kept. */
function candidates(slices: readonly EndpointSliceResource[], portName: string, protocol: Protocol): Candidate[] {
  const found = new Map<string, Candidate>()
  for (const slice of slices) {
    const port = slicePort(slice, portName, protocol)
    if (port === undefined) continue
    for (const endpoint of endpointList(slice)) {
      const ip = firstAddress(endpoint)
      if (!ip) continue
      // kube-proxy's reading: unset ready and serving mean true, unset terminating means false.
      const conditions = endpoint.conditions ?? {}
      const ready = conditions.ready !== false
      const servingTerminating = conditions.serving !== false && conditions.terminating === true
      const key = `${ip}:${port}`
      const before = found.get(key)
      // A pod moving between slices may show up in both for a moment: either listing makes it count.
      found.set(key, {
        ip,
        port,
        ready: ready || (before?.ready ?? false),
        servingTerminating: servingTerminating || (before?.servingTerminating ?? false),
      })
    }
  }
  return [...found.values()]
}

function choose(all: Candidate[]): EndpointChoice {
  const ready = all.filter((c) => c.ready)
  const terminating = ready.length === 0
  const members = (terminating ? all.filter((c) => c.servingTerminating) : ready).map(({ip, port}) => ({ip, port}))
  members.sort((a, b) => compareIpv4(a.ip, b.ip) || a.port - b.port)
  return {members, terminating: terminating && members.length > 0}
}

/** The slice's port of that name and protocol; a slice written by hand may carry anything. */
function slicePort(slice: EndpointSliceResource, portName: string, protocol: Protocol): number | undefined {
  for (const port of Array.isArray(slice.ports) ? slice.ports : []) {
    if (typeof port !== 'object' || port === null) continue
    const name = typeof port.name === 'string' ? port.name : ''
    // An absent protocol is TCP, as the API defaults it; anything but text is no protocol at all.
    const proto = port.protocol === undefined || port.protocol === null ? 'tcp' : typeof port.protocol === 'string' ? port.protocol.toLowerCase() : undefined
    if (name !== portName || proto !== protocol) continue
    return Number.isInteger(port.port) && port.port! >= 1 && port.port! <= 65535 ? port.port : undefined
  }
  return undefined
}

function endpointList(slice: EndpointSliceResource): NonNullable<EndpointSliceResource['endpoints']> {
  return Array.isArray(slice.endpoints) ? slice.endpoints.filter((e) => typeof e === 'object' && e !== null) : []
}

// The API calls an endpoint's addresses fungible; kube-proxy uses the first, and so does smartnat.
function firstAddress(endpoint: NonNullable<EndpointSliceResource['endpoints']>[number]): Ipv4 | undefined {
  const first = Array.isArray(endpoint.addresses) ? endpoint.addresses[0] : undefined
  const ip = parseIpv4(first)
  return ip !== undefined && isPodAddress(ip) ? ip : undefined
}

/**
 * Whether a pod may have this address. The API server refuses the rest in an EndpointSlice (this
 * host, no host, link-local); multicast and reserved ones cannot be a DNAT target either.
 */
function isPodAddress(ip: Ipv4): boolean {
  const first = ipv4ToInt(ip) >>> 24
  const second = (ipv4ToInt(ip) >>> 16) & 0xff
  return first !== 0 && first !== 127 && first < 224 && !(first === 169 && second === 254)
}
