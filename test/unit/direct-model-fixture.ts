/** Hand-built NatModels with mode direct Mappings, for the renderer, tracer, diff and kernel tests. */
import {compareIpv4} from '../../src/lib/net/ipv4.js'
import type {DirectEndpoint, NatGroup, NatMapping, NatModel} from '../../src/lib/plan/model.js'
import {cidr, ip, kernelTestModel, sampleModel} from './nat-model-fixture.js'

/** A group of `namespace/name protocol/servicePort` over `members` (`ip:port`), sorted as the planner sorts them. */
export function group(id: string, members: string[], affinitySeconds?: number): NatGroup {
  const parsed = members.map((m) => {
    const [address, port] = m.split(':') as [string, string]
    return {ip: ip(address), port: Number(port)}
  })
  return {id, members: parsed, terminating: false, ...(affinitySeconds === undefined ? {} : {affinitySeconds})}
}

function direct(address: string, spec: string, to: NatGroup): DirectEndpoint {
  const [protocol, port] = spec.split('/') as ['tcp' | 'udp', string]
  return {address: ip(address), protocol, port: Number(port), group: to}
}

/** A direct Mapping over `groups`; each endpoint `address spec` names the index of its group. */
function directMapping(key: string, addresses: [string, string][], allowedSources: string[], groups: NatGroup[], endpoints: [string, string, number][]): NatMapping {
  const [namespace, name] = key.split('/') as [string, string]
  const pods = new Set(groups.flatMap((g) => g.members.map((m) => m.ip)))
  return {
    namespace,
    name,
    addresses: addresses.map(([address, iface]) => ({address: ip(address), interface: iface})),
    allowedSources: allowedSources.map(cidr),
    podIPs: [...pods].sort(compareIpv4),
    endpoints: endpoints.map(([address, spec, index]) => direct(address, spec, groups[index]!)),
    groups,
  }
}

/**
 * The sample model plus `shop/api` in mode direct, allowed from 203.0.113.0/24 only: tcp/8080 on
 * 198.18.0.10 and 198.18.2.10 both lead to one group of three pods; udp/5353 to two pods with
 * ClientIP affinity of 300 s; tcp/9000 and udp/9000 to empty groups (refused).
 */
export function directModel(options: {masquerade?: boolean} = {}): NatModel {
  const model = sampleModel(options)
  const groups = [
    group('shop/api tcp/80', ['10.244.2.1:8080', '10.244.2.2:8080', '10.244.2.3:8080']),
    group('shop/api udp/53', ['10.244.2.1:5353', '10.244.2.2:5353'], 300),
    group('shop/api tcp/9000', []),
    group('shop/api udp/9000', []),
  ]
  const api = directMapping('shop/api', [['198.18.0.10', 'eth1'], ['198.18.2.10', 'eth3']], ['203.0.113.0/24'], groups, [
    ['198.18.0.10', 'tcp/8080', 0],
    ['198.18.0.10', 'tcp/9000', 2],
    ['198.18.0.10', 'udp/5353', 1],
    ['198.18.0.10', 'udp/9000', 3],
    ['198.18.2.10', 'tcp/8080', 0],
  ])
  model.mappings.splice(2, 0, api)
  return model
}

/**
 * The kernel test model plus `lab/direct` on 198.18.0.10: tcp/8080 to three pods, udp/5353 to two
 * pods with affinity, tcp/9000 to an empty group.
 */
export function kernelDirectModel(): NatModel {
  const model = kernelTestModel()
  const groups = [
    group('lab/direct tcp/80', ['198.19.200.31:8080', '198.19.200.32:8080', '198.19.200.33:8080']),
    group('lab/direct udp/53', ['198.19.200.31:5353', '198.19.200.32:5353'], 600),
    group('lab/direct tcp/9000', []),
  ]
  const mapping = directMapping('lab/direct', [['198.18.0.10', 'ext1']], ['0.0.0.0/0'], groups, [
    ['198.18.0.10', 'tcp/8080', 0],
    ['198.18.0.10', 'tcp/9000', 2],
    ['198.18.0.10', 'udp/5353', 1],
  ])
  model.mappings.splice(1, 0, mapping)
  return model
}

/** `count` direct Mappings `direct/m<i>` on 198.18.0.10, each one port (20000 + i) to a group of three pods. */
export function manyDirectModel(count: number): NatModel {
  const model = sampleModel({egress: false})
  for (let i = 0; i < count; i++) {
    const name = `direct/m${String(i).padStart(4, '0')}`
    const pods = [1, 2, 3].map((n) => `10.${100 + Math.floor(i / 250)}.${i % 250}.${n}:80`)
    model.mappings.push(directMapping(name, [['198.18.0.10', 'eth1']], ['0.0.0.0/0'], [group(`${name} tcp/80`, pods)], [['198.18.0.10', `tcp/${20000 + i}`, 0]]))
  }
  model.mappings.sort((a, b) => `${a.namespace}/${a.name}`.localeCompare(`${b.namespace}/${b.name}`))
  return model
}
