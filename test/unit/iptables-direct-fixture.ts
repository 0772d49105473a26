/** The sample model plus Mappings in mode direct, for the iptables backend's renderer, tracer, diff and kernel tests. */
import type {NatGroup, NatMapping, NatModel} from '../../src/lib/plan/model.js'
import {cidr, ip, sampleModel} from './nat-model-fixture.js'

/** A group `id` over `members` (`ip:port`, given sorted). */
export function group(id: string, members: string[], affinitySeconds?: number): NatGroup {
  return {
    id,
    members: members.map((member) => {
      const [address, port] = member.split(':') as [string, string]
      return {ip: ip(address), port: Number(port)}
    }),
    terminating: false,
    ...(affinitySeconds === undefined ? {} : {affinitySeconds}),
  }
}

/** A Mapping in mode direct; each endpoint is `address proto/port` and the group it leads to. */
export function directMapping(key: string, addresses: [string, string][], allowedSources: string[], endpoints: [string, NatGroup][]): NatMapping {
  const [namespace, name] = key.split('/') as [string, string]
  const groups = [...new Map(endpoints.map(([, g]) => [g.id, g])).values()]
  return {
    namespace,
    name,
    addresses: addresses.map(([address, iface]) => ({address: ip(address), interface: iface})),
    allowedSources: allowedSources.map(cidr),
    podIPs: [...new Set(groups.flatMap((g) => g.members.map((m) => m.ip)))].sort(),
    endpoints: endpoints.map(([spec, g]) => {
      const [address, port] = spec.split(' ') as [string, string]
      const [protocol, number] = port.split('/') as ['tcp' | 'udp', string]
      return {address: ip(address), protocol, port: Number(number), group: g}
    }),
    groups,
  }
}

/**
 * The sample model with three direct Mappings: shop/cart spreads tcp/8080 on two addresses over
 * three pods and udp/9000 over one; default/sticky keeps clients of 198.18.7.0/24 on one of two
 * pods for 10800 s; default/empty has no endpoint for tcp/9090 nor udp/9090.
 */
export function directModel(options: {masquerade?: boolean} = {}): NatModel {
  const model = sampleModel(options)
  const cart = group('shop/cart tcp/80', ['198.19.200.11:8080', '198.19.200.12:8080', '198.19.200.13:8081'])
  model.mappings.push(
    directMapping('default/empty', [['198.18.0.10', 'eth1']], ['198.18.7.0/24'], [
      ['198.18.0.10 tcp/9090', group('default/empty tcp/9090', [])],
      ['198.18.0.10 udp/9090', group('default/empty udp/9090', [])],
    ]),
    directMapping('default/sticky', [['198.18.0.10', 'eth1']], ['198.18.7.0/24'], [
      ['198.18.0.10 tcp/8443', group('default/sticky tcp/443', ['198.19.200.21:8443', '198.19.200.22:8443'], 10800)],
    ]),
    directMapping('shop/cart', [['198.18.1.10', 'eth2'], ['198.18.2.10', 'eth3']], ['0.0.0.0/0'], [
      ['198.18.1.10 tcp/8080', cart],
      ['198.18.1.10 udp/9000', group('shop/cart udp/9000', ['198.19.200.14:9000'])],
      ['198.18.2.10 tcp/8080', cart],
    ]),
  )
  model.mappings.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
  return model
}
