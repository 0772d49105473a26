import {expect} from 'chai'
import fc from 'fast-check'

import {checkEndpoint} from '../../src/lib/backend/model-checks.js'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL, type EndpointSliceResource, type MappingResource, type ServiceResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type MappingVerdict, type NatMapping} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'

const EXT = '198.18.0.10'
const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: EXT as Ipv4, prefixLength: 24}]}]}

type SlicePort = {name?: unknown; port?: unknown; protocol?: unknown}
type SliceEndpoint = {ip: unknown; ready?: unknown; serving?: unknown; terminating?: unknown}

function mapping(spec: Record<string, unknown> = {}, mode: 'service' | 'direct' = 'direct'): MappingResource {
  return {
    apiVersion: MAPPING_API_VERSION,
    kind: 'Mapping',
    metadata: {namespace: 'default', name: 'web'},
    spec: {addresses: [EXT], serviceName: 'web', mode, ports: [{port: 80}], ...spec},
  }
}

function service(spec: NonNullable<ServiceResource['spec']> = {}): ServiceResource {
  return {apiVersion: 'v1', kind: 'Service', metadata: {namespace: 'default', name: 'web'}, spec: {clusterIP: '198.19.100.10', ports: [{name: 'http', port: 80, targetPort: 'http'}], ...spec}}
}

function slice(name: string, ports: SlicePort[], endpoints: SliceEndpoint[], addressType = 'IPv4'): EndpointSliceResource {
  return {
    metadata: {namespace: 'default', name, labels: {[SERVICE_NAME_LABEL]: 'web'}},
    addressType,
    ports: ports as EndpointSliceResource['ports'],
    endpoints: endpoints.map(({ip, ...conditions}) => ({addresses: [ip], conditions})) as EndpointSliceResource['endpoints'],
  }
}

const HTTP: SlicePort[] = [{name: 'http', port: 8080, protocol: 'TCP'}]

interface Case {
  desc: string
  mapping?: MappingResource
  service?: ServiceResource
  slices: EndpointSliceResource[]
  /** Each group as `id: members` (`-` when empty), with ` terminating` and ` affinity N` when so. */
  groups: string[]
  unservedPorts?: MappingVerdict['unservedPorts']
}

function groupLines(m: NatMapping | undefined): string[] {
  return (m?.groups ?? []).map((g) => {
    const members = g.members.map((x) => `${x.ip}:${x.port}`).join(',') || '-'
    return `${g.id}: ${members}${g.terminating ? ' terminating' : ''}${g.affinitySeconds === undefined ? '' : ` affinity ${g.affinitySeconds}`}`
  })
}

describe('plan in mode direct', () => {
  const cases: Case[] = [
    {
      desc: 'a named targetPort leads to the port each slice gives that name, even when pods differ',
      slices: [
        slice('web-a', [{name: 'http', port: 8080}], [{ip: '198.19.200.11', ready: true}]),
        slice('web-b', [{name: 'http', port: 9090}, {name: 'admin', port: 9999}], [{ip: '198.19.200.12', ready: true}]),
      ],
      groups: ['default/web tcp/80: 198.19.200.11:8080,198.19.200.12:9090'],
    },
    {
      desc: 'an unnamed Service port matches the slice’s unnamed port, not a named one',
      service: service({ports: [{port: 80, targetPort: 8080}]}),
      slices: [slice('web-a', [{name: 'metrics', port: 9100}, {port: 8080}], [{ip: '198.19.200.11'}]), slice('web-b', [{name: 'http', port: 8081}], [{ip: '198.19.200.12'}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080'],
    },
    {
      desc: 'a slice port of the other protocol does not serve the port',
      mapping: mapping({ports: [{port: 53, protocol: 'udp'}]}),
      service: service({ports: [{name: 'dns', port: 53, protocol: 'UDP'}]}),
      slices: [slice('web-a', [{name: 'dns', port: 5353, protocol: 'TCP'}], [{ip: '198.19.200.11'}]), slice('web-b', [{name: 'dns', port: 5354, protocol: 'UDP'}], [{ip: '198.19.200.12'}])],
      groups: ['default/web udp/53: 198.19.200.12:5354'],
    },
    {
      desc: 'IPv6 slices are ignored',
      slices: [slice('web-v6', HTTP, [{ip: '198.19.200.13'}], 'IPv6'), slice('web-fqdn', HTTP, [{ip: '198.19.200.14'}], 'FQDN'), slice('web-v4', HTTP, [{ip: '198.19.200.11'}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080'],
    },
    {
      desc: 'ready and unset ready endpoints serve; not ready ones do not',
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11', ready: true}, {ip: '198.19.200.12'}, {ip: '198.19.200.13', ready: null}, {ip: '198.19.200.14', ready: false}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080,198.19.200.12:8080,198.19.200.13:8080'],
    },
    {
      desc: 'a serving terminating endpoint waits while any is ready',
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11', ready: true}, {ip: '198.19.200.12', ready: false, serving: true, terminating: true}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080'],
    },
    {
      desc: 'none ready: the serving terminating ones serve, and the group says so',
      slices: [
        slice('web-a', HTTP, [
          {ip: '198.19.200.11', ready: false, serving: true, terminating: true},
          {ip: '198.19.200.12', ready: false, terminating: true},
          {ip: '198.19.200.13', ready: false, serving: false, terminating: true},
          {ip: '198.19.200.14', ready: false, serving: true},
        ]),
      ],
      groups: ['default/web tcp/80: 198.19.200.11:8080,198.19.200.12:8080 terminating'],
    },
    {
      desc: 'none at all: an empty group, and the port is unserved',
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11', ready: false}])],
      groups: ['default/web tcp/80: -'],
      unservedPorts: [{protocol: 'tcp', port: 80}],
    },
    {
      desc: 'no slice: every port of the Mapping is unserved, each once, in port order',
      mapping: mapping({ports: [{port: 8443, servicePort: 80}, {port: 80}, {port: 53, protocol: 'udp'}]}),
      service: service({ports: [{name: 'http', port: 80}, {name: 'dns', port: 53, protocol: 'UDP'}]}),
      slices: [],
      groups: ['default/web tcp/80: -', 'default/web udp/53: -'],
      unservedPorts: [
        {protocol: 'tcp', port: 80},
        {protocol: 'tcp', port: 8443},
        {protocol: 'udp', port: 53},
      ],
    },
    {
      desc: 'an endpoint listed by two slices counts once, ready if either says so',
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11', ready: false}, {ip: '198.19.200.12'}]), slice('web-b', HTTP, [{ip: '198.19.200.11', ready: true}, {ip: '198.19.200.12'}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080,198.19.200.12:8080'],
    },
    {
      desc: 'ClientIP affinity without a timeout keeps a client for 10800 s',
      service: service({sessionAffinity: 'ClientIP'}),
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11'}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080 affinity 10800'],
    },
    {
      desc: 'ClientIP affinity with a timeout keeps it for that long',
      service: service({sessionAffinity: 'ClientIP', sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}}),
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11'}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080 affinity 60'],
    },
    {
      desc: 'a timeout the API server would refuse falls back to 10800 s',
      service: service({sessionAffinity: 'ClientIP', sessionAffinityConfig: {clientIP: {timeoutSeconds: 86401}}}),
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11'}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080 affinity 10800'],
    },
    {
      desc: 'a headless Service is served',
      service: service({clusterIP: 'None'}),
      slices: [slice('web-a', HTTP, [{ip: '198.19.200.11'}])],
      groups: ['default/web tcp/80: 198.19.200.11:8080'],
    },
    {
      desc: 'hostile slice data is left out, never thrown',
      slices: [
        slice('web-bad-ports', [{name: 'http', port: '8080'}], [{ip: '198.19.200.21'}]),
        slice('web-zero-port', [{name: 'http', port: 0}], [{ip: '198.19.200.22'}]),
        slice('web-high-port', [{name: 'http', port: 65536}], [{ip: '198.19.200.23'}]),
        slice('web-protocol', [{name: 'http', port: 8080, protocol: 6}], [{ip: '198.19.200.24'}]),
        slice('web-name', [{name: ['http'], port: 8080}], [{ip: '198.19.200.25'}]),
        slice('web-addresses', HTTP, [
          {ip: 7},
          {ip: '198.19.200.026'},
          {ip: '198.19.200.27 '},
          {ip: '198.19.200.28/32'},
          {ip: '0.0.0.0'},
          {ip: '127.0.0.1'},
          {ip: '169.254.1.1'},
          {ip: '224.0.0.1'},
          {ip: '255.255.255.255'},
          {ip: '198.19.200.11', ready: 'false'},
        ]),
        {metadata: {namespace: 'default', name: 'web-junk', labels: {[SERVICE_NAME_LABEL]: 'web'}}, addressType: 'IPv4', ports: 'http', endpoints: [null, 'x', {addresses: 'x'}]} as unknown as EndpointSliceResource,
        null as unknown as EndpointSliceResource,
      ],
      groups: ['default/web tcp/80: 198.19.200.11:8080'],
    },
  ]
  for (const c of cases) {
    it(c.desc, () => {
      const got = plan({mappings: [c.mapping ?? mapping()], services: [c.service ?? service()], endpointSlices: c.slices}, host, DEFAULT_PLAN_OPTIONS)
      const [m] = got.model.mappings
      expect(got.verdicts[0]!.invalid).to.equal('no')
      expect(groupLines(m)).to.deep.equal(c.groups)
      expect(got.verdicts[0]!.unservedPorts).to.deep.equal(c.unservedPorts)
      // Status lists the pods in use: the members of the groups.
      const members = [...new Set(m!.groups!.flatMap((g) => g.members.map((x) => x.ip)))].sort()
      expect(got.verdicts[0]!.configuredAddresses).to.deep.equal({[EXT]: {podIPs: members}})
      expect(m!.podIPs).to.deep.equal(members)
    })
  }

  it('leads every address and port of the Mapping to the group of its Service port', () => {
    const got = plan(
      {
        mappings: [mapping({addresses: [EXT], ports: [{port: 80}, {port: 8080, servicePort: 80}]})],
        services: [service()],
        endpointSlices: [slice('web-a', HTTP, [{ip: '198.19.200.11'}])],
      },
      host,
      DEFAULT_PLAN_OPTIONS,
    )
    const [m] = got.model.mappings
    expect(m!.endpoints.map((e) => `${e.address} ${e.protocol}/${e.port} -> ${e.group?.id}`)).to.deep.equal([
      `${EXT} tcp/80 -> default/web tcp/80`,
      `${EXT} tcp/8080 -> default/web tcp/80`,
    ])
    expect(m!.endpoints[0]!.group).to.equal(m!.groups![0])
    expect(m).to.include({serviceVIP: '198.19.100.10'})
  })

  it('gives a headless Service’s Mapping no VIP', () => {
    const got = plan({mappings: [mapping()], services: [service({clusterIP: 'None'})], endpointSlices: []}, host, DEFAULT_PLAN_OPTIONS)
    expect(got.model.mappings[0]).to.not.have.property('serviceVIP')
    expect(got.verdicts[0]).to.not.have.property('serviceVIP')
  })

  describe('refusals', () => {
    const refusals: {desc: string; mapping: MappingResource; service: ServiceResource; want: string}[] = [
      {desc: 'a headless Service in mode service', mapping: mapping({}, 'service'), service: service({clusterIP: 'None'}), want: 'service default/web is headless (clusterIP None); mode service needs a ClusterIP'},
      {
        desc: 'an ExternalName Service in mode direct',
        mapping: mapping(),
        service: service({type: 'ExternalName', externalName: 'example.com', clusterIP: undefined}),
        want: 'service default/web is of type ExternalName; mode direct needs EndpointSlices listing its pods',
      },
      {desc: 'a port the Service lacks', mapping: mapping({ports: [{port: 81}]}), service: service(), want: 'service default/web has no tcp port 81'},
    ]
    for (const r of refusals) {
      it(r.desc, () => {
        const got = plan({mappings: [r.mapping], services: [r.service], endpointSlices: []}, host, DEFAULT_PLAN_OPTIONS)
        expect(got.verdicts[0]).to.include({valid: false, invalid: r.want})
        expect(got.model.mappings).to.deep.equal([])
      })
    }
  })

  it('never throws on arbitrary slice data, and lets only what a renderer accepts into the model', () => {
    const anything = fc.oneof(fc.anything(), fc.string(), fc.integer(), fc.constantFrom('198.19.200.11', '0.0.0.0', '01.2.3.4', 'http', '', 'TCP', 'udp'))
    const port = fc.record({name: fc.oneof(fc.constant('http'), anything), port: fc.oneof(fc.integer({min: -1, max: 70000}), anything), protocol: fc.oneof(fc.constant('TCP'), anything)}, {requiredKeys: []})
    const endpoint = fc.record(
      {addresses: fc.oneof(fc.array(fc.oneof(fc.ipV4(), anything), {maxLength: 3}), anything), conditions: fc.oneof(fc.record({ready: anything, serving: anything, terminating: anything}, {requiredKeys: []}), anything)},
      {requiredKeys: []},
    )
    const hostileSlice = fc.record({
      metadata: fc.constant({namespace: 'default', name: 'web-x', labels: {[SERVICE_NAME_LABEL]: 'web'}}),
      addressType: fc.oneof(fc.constant('IPv4'), anything),
      ports: fc.oneof(fc.array(fc.oneof(port, anything), {maxLength: 3}), anything),
      endpoints: fc.oneof(fc.array(fc.oneof(endpoint, anything), {maxLength: 4}), anything),
    })
    fc.assert(
      fc.property(fc.array(hostileSlice, {maxLength: 3}), (slices) => {
        const got = plan({mappings: [mapping()], services: [service()], endpointSlices: slices as EndpointSliceResource[]}, host, DEFAULT_PLAN_OPTIONS)
        for (const m of got.model.mappings) for (const e of m.endpoints) checkEndpoint(m, e)
      }),
      {numRuns: 300},
    )
  })
})
