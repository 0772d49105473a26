import {expect} from 'chai'
import fc from 'fast-check'
import {readFileSync} from 'node:fs'
import {parseAllDocuments} from 'yaml'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import type {Cidr, Ipv4} from '../../src/lib/net/ipv4.js'
import {gatewayOf} from '../../src/lib/plan/interfaces.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type HostInterface, type PlanOptions, type Snapshot} from '../../src/lib/plan/model.js'
import {PlanMemo} from '../../src/lib/plan/memo.js'
import {plan} from '../../src/lib/plan/plan.js'

const ip = (text: string) => text as Ipv4
const cidr = (text: string) => text as Cidr

interface MappingFixture {
  addresses: unknown
  ports?: unknown
  serviceName?: string
  allowedSources?: unknown
  created?: string
  generation?: number
  resourceVersion?: string
}

function mapping(key: string, f: MappingFixture): MappingResource {
  const [namespace, name] = key.split('/')
  return {
    apiVersion: 'smartnat.aureacentral.com/v1alpha1',
    kind: 'Mapping',
    metadata: {
      namespace,
      name,
      ...(f.created ? {creationTimestamp: f.created} : {}),
      ...(f.generation ? {generation: f.generation} : {}),
      ...(f.resourceVersion ? {resourceVersion: f.resourceVersion} : {}),
    },
    spec: {
      addresses: f.addresses,
      serviceName: f.serviceName ?? 'web',
      ports: f.ports ?? [{port: 80}],
      ...(f.allowedSources ? {allowedSources: f.allowedSources} : {}),
    },
  }
}

function service(key: string, clusterIP: string, ports: {port: number; protocol?: string}[] = [{port: 80}]): ServiceResource {
  const [namespace, name] = key.split('/')
  return {apiVersion: 'v1', kind: 'Service', metadata: {namespace, name}, spec: {type: 'ClusterIP', clusterIP, ports}}
}

function slice(
  key: string,
  serviceName: string,
  endpoints: {ip: string; ready?: boolean | null}[],
  addressType = 'IPv4',
): EndpointSliceResource {
  const [namespace, name] = key.split('/')
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {namespace, name, labels: {'kubernetes.io/service-name': serviceName}},
    addressType,
    endpoints: endpoints.map((e) => ({addresses: [e.ip], ...(e.ready === undefined ? {} : {conditions: {ready: e.ready}})})),
  }
}

function iface(name: string, ...cidrs: string[]): HostInterface {
  return {
    name,
    addresses: cidrs.map((c) => {
      const [address, length] = c.split('/')
      return {address: ip(address!), prefixLength: Number(length)}
    }),
  }
}

const host: HostInfo = {
  interfaces: [iface('eth2', '198.18.1.10/24'), iface('eth1', '198.18.0.10/24', '198.18.0.11/24', '198.18.4.1/30'), iface('eth3')],
}

const options: PlanOptions = {...DEFAULT_PLAN_OPTIONS}

function snapshot(mappings: MappingResource[], services: ServiceResource[] = [], endpointSlices: EndpointSliceResource[] = []): Snapshot {
  return {mappings, services, endpointSlices}
}

function verdictOf(p: ReturnType<typeof plan>, key: string) {
  const found = p.verdicts.find((v) => `${v.namespace}/${v.name}` === key)
  if (!found) throw new Error(`no verdict for ${key}`)
  return found
}

describe('plan', () => {
  it('plans a Mapping end to end', () => {
    const input = snapshot(
      [mapping('default/echo', {addresses: ['198.18.0.10'], ports: [{port: 8080}], serviceName: 'echo', generation: 3, allowedSources: ['203.0.113.7', '10.0.0.0/8']})],
      [service('default/echo', '198.19.100.10', [{port: 8080, protocol: 'TCP'}])],
      [slice('default/echo-abc', 'echo', [{ip: '198.19.200.11'}, {ip: '198.19.200.10', ready: true}])],
    )
    const before = structuredClone(input)
    const got = plan(input, host, options)
    expect(input).to.deep.equal(before)
    expect(got).to.deep.equal({
      model: {
        mappings: [
          {
            namespace: 'default',
            name: 'echo',
            addresses: [{address: '198.18.0.10', interface: 'eth1'}],
            allowedSources: ['10.0.0.0/8', '203.0.113.7/32'],
            serviceVIP: '198.19.100.10',
            podIPs: ['198.19.200.10', '198.19.200.11'],
            endpoints: [{address: '198.18.0.10', protocol: 'tcp', port: 8080, targetIP: '198.19.100.10', targetPort: 8080}],
          },
        ],
        interfaces: [
          {
            name: 'eth1',
            index: 1,
            table: 7001,
            subnets: [
              {cidr: '198.18.0.0/24', source: '198.18.0.10'},
              {cidr: '198.18.4.0/30', source: '198.18.4.1'},
            ],
            gateway: '198.18.0.1',
          },
          {name: 'eth2', index: 2, table: 7002, subnets: [{cidr: '198.18.1.0/24', source: '198.18.1.10'}], gateway: '198.18.1.1'},
        ],
        egress: [],
        masquerade: true,
      },
      verdicts: [
        {
          namespace: 'default',
          name: 'echo',
          generation: 3,
          valid: true,
          invalid: 'no',
          serviceVIP: '198.19.100.10',
          configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.200.10', '198.19.200.11']}},
          notLocalAddresses: [],
        },
      ],
      interfaceFaults: [],
    })
  })

  it('DNATs to the Service port and sorts endpoints by address, protocol and port', () => {
    const ports = [{port: 2222, servicePort: 22}, {port: 53, protocol: 'udp', servicePort: 5353}, {port: 53, protocol: 'TCP', servicePort: 5353}]
    const got = plan(
      snapshot(
        [mapping('default/multi', {addresses: ['198.18.1.10', '198.18.0.11'], ports})],
        [service('default/web', '198.19.100.20', [{port: 22}, {port: 5353, protocol: 'UDP'}, {port: 5353}])],
      ),
      host,
      options,
    )
    const [m] = got.model.mappings
    expect(m!.addresses).to.deep.equal([
      {address: '198.18.0.11', interface: 'eth1'},
      {address: '198.18.1.10', interface: 'eth2'},
    ])
    expect(m!.endpoints.map((e) => `${e.address} ${e.protocol}/${e.port} -> ${e.targetIP}:${e.targetPort}`)).to.deep.equal([
      '198.18.0.11 tcp/53 -> 198.19.100.20:5353',
      '198.18.0.11 tcp/2222 -> 198.19.100.20:22',
      '198.18.0.11 udp/53 -> 198.19.100.20:5353',
      '198.18.1.10 tcp/53 -> 198.19.100.20:5353',
      '198.18.1.10 tcp/2222 -> 198.19.100.20:22',
      '198.18.1.10 udp/53 -> 198.19.100.20:5353',
    ])
  })

  it('programs local addresses only and reports the others', () => {
    const got = plan(
      snapshot(
        [
          mapping('default/partly-here', {addresses: ['198.18.9.9', '198.18.1.10', '198.18.0.10', '198.18.2.2']}),
          mapping('default/elsewhere', {addresses: ['198.18.7.7'], ports: [{port: 81}]}),
        ],
        [service('default/web', '198.19.0.1', [{port: 80}, {port: 81}])],
      ),
      host,
      options,
    )
    expect(got.model.mappings.map((m) => m.name)).to.deep.equal(['partly-here'])
    expect(verdictOf(got, 'default/partly-here')).to.include({valid: true, invalid: 'no'})
    expect(verdictOf(got, 'default/partly-here').notLocalAddresses).to.deep.equal(['198.18.2.2', '198.18.9.9'])
    expect(Object.keys(verdictOf(got, 'default/partly-here').configuredAddresses)).to.deep.equal(['198.18.0.10', '198.18.1.10'])
    expect(verdictOf(got, 'default/elsewhere')).to.deep.equal({
      namespace: 'default',
      name: 'elsewhere',
      valid: true,
      invalid: 'no',
      serviceVIP: '198.19.0.1',
      configuredAddresses: {},
      notLocalAddresses: ['198.18.7.7'],
    })
  })

  it('takes ready IPv4 endpoints of the Service in the same namespace only', () => {
    const got = plan(
      snapshot(
        [mapping('team-a/web', {addresses: ['198.18.0.10']})],
        [service('team-a/web', '198.19.0.1')],
        [
          slice('team-a/web-1', 'web', [{ip: '198.19.200.10'}, {ip: '198.19.200.9', ready: null}, {ip: '198.19.200.8', ready: false}]),
          slice('team-a/web-2', 'web', [{ip: '198.19.200.10'}, {ip: '198.19.200.100', ready: true}]),
          slice('team-a/web-3', 'web', [{ip: 'fd00::1'}], 'IPv6'),
          slice('team-a/other', 'other', [{ip: '198.19.200.50'}]),
          slice('team-b/web', 'web', [{ip: '198.19.200.60'}]),
        ],
      ),
      host,
      options,
    )
    expect(got.model.mappings[0]!.podIPs).to.deep.equal(['198.19.200.9', '198.19.200.10', '198.19.200.100'])
  })

  it('never resolves a Service of another namespace', () => {
    const got = plan(snapshot([mapping('team-a/web', {addresses: ['198.18.0.10']})], [service('default/web', '198.19.0.1')]), host, options)
    expect(verdictOf(got, 'team-a/web').invalid).to.equal('service "web" not found in namespace "team-a"')
    expect(got.model.mappings).to.deep.equal([])
  })

  describe('Mappings being deleted', () => {
    const services = [service('a/web', '198.19.0.1')]
    const deleting = (m: MappingResource, since: string): MappingResource => ({
      ...m,
      metadata: {...m.metadata, deletionTimestamp: since, finalizers: ['mapping.finalizers.aureacentral.com']},
    })

    it('stops serving a Mapping with a deletionTimestamp and says so in its verdict', () => {
      const got = plan(
        snapshot([deleting(mapping('a/gone', {addresses: ['198.18.0.10'], generation: 4}), '2026-01-02T03:04:05Z')], services),
        host,
        options,
      )
      expect(got.model.mappings).to.deep.equal([])
      expect(got.model.egress).to.deep.equal([])
      expect(verdictOf(got, 'a/gone')).to.deep.equal({
        namespace: 'a',
        name: 'gone',
        generation: 4,
        valid: false,
        invalid: 'being deleted since 2026-01-02T03:04:05Z; no longer served',
        configuredAddresses: {},
        notLocalAddresses: [],
        deleting: '2026-01-02T03:04:05Z',
      })
    })

    it('lets a younger Mapping take the endpoints of an older one being deleted', () => {
      const got = plan(
        snapshot(
          [
            deleting(mapping('a/old', {addresses: ['198.18.0.10'], created: '2024-01-01T00:00:00Z'}), '2026-01-02T03:04:05Z'),
            mapping('a/new', {addresses: ['198.18.0.10'], created: '2025-01-01T00:00:00Z'}),
          ],
          services,
        ),
        host,
        options,
      )
      expect(verdictOf(got, 'a/new').invalid).to.equal('no')
      expect(got.model.mappings.map((m) => m.name)).to.deep.equal(['new'])
    })
  })

  describe('conflicts', () => {
    const services = [service('a/web', '198.19.0.1', [{port: 80}, {port: 80, protocol: 'UDP'}]), service('b/web', '198.19.0.2', [{port: 80}])]

    it('gives the endpoint to the older Mapping in any namespace and names it in the loser', () => {
      const got = plan(
        snapshot(
          [
            mapping('a/newer', {addresses: ['198.18.0.10'], created: '2024-05-01T00:00:00Z'}),
            mapping('b/older', {addresses: ['198.18.0.10'], created: '2024-04-30T23:59:59Z'}),
          ],
          services,
        ),
        host,
        options,
      )
      expect(verdictOf(got, 'b/older').invalid).to.equal('no')
      expect(verdictOf(got, 'a/newer')).to.deep.equal({
        namespace: 'a',
        name: 'newer',
        valid: false,
        invalid: 'tcp/80 on 198.18.0.10 is already mapped by b/older',
        configuredAddresses: {},
        notLocalAddresses: [],
      })
      expect(got.model.mappings.map((m) => `${m.namespace}/${m.name}`)).to.deep.equal(['b/older'])
    })

    it('compares instants, not text, and breaks ties by namespace then name', () => {
      const got = plan(
        snapshot(
          [
            mapping('b/first', {addresses: ['198.18.0.10'], created: '2024-05-01T02:00:00+02:00'}),
            mapping('a/zed', {addresses: ['198.18.0.10'], created: '2024-05-01T00:00:00Z'}),
            mapping('a/alpha', {addresses: ['198.18.0.10'], created: '2024-05-01T00:00:00.000Z'}),
          ],
          services,
        ),
        host,
        options,
      )
      expect(verdictOf(got, 'a/alpha').invalid).to.equal('no')
      expect(verdictOf(got, 'a/zed').invalid).to.equal('tcp/80 on 198.18.0.10 is already mapped by a/alpha')
      expect(verdictOf(got, 'b/first').invalid).to.equal('tcp/80 on 198.18.0.10 is already mapped by a/alpha')
    })

    it('puts a Mapping without a creation time after every dated one', () => {
      const got = plan(
        snapshot(
          [mapping('a/undated', {addresses: ['198.18.0.10']}), mapping('b/dated', {addresses: ['198.18.0.10'], created: '2030-01-01T00:00:00Z'})],
          services,
        ),
        host,
        options,
      )
      expect(verdictOf(got, 'a/undated').invalid).to.equal('tcp/80 on 198.18.0.10 is already mapped by b/dated')
    })

    it('decides on addresses this host does not have, the same as every other instance', () => {
      const got = plan(
        snapshot(
          [
            mapping('a/old', {addresses: ['198.18.9.9'], created: '2024-01-01T00:00:00Z'}),
            mapping('b/new', {addresses: ['198.18.0.10', '198.18.9.9'], created: '2024-02-01T00:00:00Z'}),
          ],
          services,
        ),
        host,
        options,
      )
      expect(verdictOf(got, 'b/new').invalid).to.equal('tcp/80 on 198.18.9.9 is already mapped by a/old')
      expect(got.model.mappings).to.deep.equal([])
    })

    it('lets other protocols, ports and addresses coexist', () => {
      const got = plan(
        snapshot(
          [
            mapping('a/web', {addresses: ['198.18.0.10'], created: '2024-01-01T00:00:00Z'}),
            mapping('a/dns', {addresses: ['198.18.0.10'], ports: [{port: 80, protocol: 'udp'}], serviceName: 'web'}),
            mapping('a/other-ip', {addresses: ['198.18.0.11']}),
          ],
          services,
        ),
        host,
        options,
      )
      expect(got.verdicts.map((v) => v.invalid)).to.deep.equal(['no', 'no', 'no'])
      expect(got.model.mappings).to.have.length(3)
    })

    it('lets a Mapping keep an endpoint whose only rival lost elsewhere', () => {
      const got = plan(
        snapshot(
          [
            mapping('a/oldest', {addresses: ['198.18.0.10'], created: '2024-01-01T00:00:00Z'}),
            mapping('a/middle', {addresses: ['198.18.0.10', '198.18.0.11'], created: '2024-02-01T00:00:00Z'}),
            mapping('a/newest', {addresses: ['198.18.0.11'], created: '2024-03-01T00:00:00Z'}),
          ],
          services,
        ),
        host,
        options,
      )
      expect(got.verdicts.map((v) => `${v.name}: ${v.invalid}`)).to.deep.equal([
        'middle: tcp/80 on 198.18.0.10 is already mapped by a/oldest',
        'newest: no',
        'oldest: no',
      ])
    })
  })

  it('lets no invalid Mapping change what the valid ones get', () => {
    const valid = [
      mapping('a/web', {addresses: ['198.18.0.10'], created: '2024-06-01T00:00:00Z'}),
      mapping('b/web', {addresses: ['198.18.0.11'], created: '2024-06-01T00:00:00Z'}),
    ]
    const services = [service('a/web', '198.19.0.1'), service('b/web', '198.19.0.2')]
    const invalid = [
      mapping('a/bad-port', {addresses: ['198.18.0.10'], ports: [{port: 0}], created: '2000-01-01T00:00:00Z'}),
      mapping('b/no-service', {addresses: ['198.18.0.11'], serviceName: 'missing', created: '2000-01-01T00:00:00Z'}),
      mapping('c/bad-address', {addresses: ['198.18.0.10', 'nope'], created: '2000-01-01T00:00:00Z'}),
    ]
    const alone = plan(snapshot(valid, services), host, {...options, snat: true})
    const crowded = plan(snapshot([...invalid, ...valid], services), host, {...options, snat: true})
    expect(crowded.model).to.deep.equal(alone.model)
    expect(crowded.verdicts.filter((v) => v.valid)).to.deep.equal(alone.verdicts)
    expect(crowded.verdicts.filter((v) => !v.valid).map((v) => v.invalid)).to.deep.equal([
      'ports[0].port 0 must be an integer in 1..65535',
      'service "missing" not found in namespace "b"',
      'addresses[1] "nope" is not an IPv4 address',
    ])
  })

  it('keeps one of several copies of a Mapping: the highest resourceVersion', () => {
    const copies = [
      mapping('a/web', {addresses: ['198.18.0.10'], resourceVersion: '99'}),
      mapping('a/web', {addresses: ['198.18.0.11'], resourceVersion: '100'}),
      mapping('a/web', {addresses: ['198.18.1.10'], resourceVersion: '7'}),
    ]
    const got = plan(snapshot(copies, [service('a/web', '198.19.0.1')]), host, options)
    expect(got.verdicts).to.have.length(1)
    expect(Object.keys(got.verdicts[0]!.configuredAddresses)).to.deep.equal(['198.18.0.11'])
  })

  describe('interfaces', () => {
    it('indexes interfaces with addresses by name, without a table for the default-gateway one', () => {
      const got = plan(snapshot([]), host, {...options, defaultGwInterface: 'eth1'})
      expect(got.model.interfaces).to.deep.equal([
        {
          name: 'eth1',
          index: 1,
          subnets: [
            {cidr: '198.18.0.0/24', source: '198.18.0.10'},
            {cidr: '198.18.4.0/30', source: '198.18.4.1'},
          ],
        },
        {name: 'eth2', index: 2, table: 7002, subnets: [{cidr: '198.18.1.0/24', source: '198.18.1.10'}], gateway: '198.18.1.1'},
      ])
    })

    it('takes the gateway from the subnet of the first address', () => {
      const got = plan(snapshot([]), {interfaces: [iface('ext0', '198.18.4.1/30', '198.18.0.10/24')]}, {...options, gwOffset: -1})
      expect(got.model.interfaces[0]!.gateway).to.equal('198.18.4.2')
    })

    const gateways: [string, number, string][] = [
      ['198.18.0.0/24', 1, '198.18.0.1'],
      ['198.18.0.0/24', -1, '198.18.0.254'],
      ['198.18.0.0/24', 5, '198.18.0.5'],
      ['198.18.0.0/24', -3, '198.18.0.252'],
      ['198.18.0.0/24', 254, '198.18.0.254'],
      ['198.18.0.0/24', 255, 'interface ext0: --gw-offset 255 falls outside the hosts of 198.18.0.0/24 (198.18.0.1..198.18.0.254)'],
      ['198.18.0.0/24', -255, 'interface ext0: --gw-offset -255 falls outside the hosts of 198.18.0.0/24 (198.18.0.1..198.18.0.254)'],
      ['198.18.0.0/24', 2, "interface ext0: --gw-offset 2 gives 198.18.0.2, which is this host's own address"],
      ['198.18.0.0/16', -1, '198.18.255.254'],
      ['198.18.4.0/31', 1, '198.18.4.1'],
      ['198.18.4.0/31', -1, '198.18.4.0'],
      ['198.18.4.4/32', 1, 'interface ext0: --gw-offset 1 falls outside the hosts of 198.18.4.4/32 (198.18.4.4..198.18.4.4)'],
    ]
    const ext0 = iface('ext0', '198.18.0.2/24')
    for (const [subnet, offset, want] of gateways) {
      it(`gateway of ${subnet} at offset ${offset} is ${want}`, () => {
        let got: string
        try {
          got = gatewayOf(ext0, cidr(subnet), offset)
        } catch (error) {
          got = (error as Error).message
        }
        expect(got).to.equal(want)
      })
    }

    describe('an interface that cannot be planned is left out; every other one is served', () => {
      // Two Mappings on ext1, whose gateway cannot be placed, and one on ext2 and ext1 at once.
      const twoInterfaces = (ext1: HostInterface): HostInfo => ({interfaces: [iface('ext2', '198.18.2.10/24'), ext1]})
      const input = snapshot(
        [
          mapping('default/a', {addresses: ['198.18.0.10'], serviceName: 'web'}),
          mapping('default/both', {addresses: ['198.18.2.10', '198.18.0.10'], ports: [{port: 81}], serviceName: 'web'}),
          mapping('default/b', {addresses: ['198.18.2.10'], ports: [{port: 82}], serviceName: 'web'}),
        ],
        [service('default/web', '198.19.100.10', [{port: 80}, {port: 81}, {port: 82}])],
      )
      const cases: {desc: string; ext1: HostInterface; gwOffset: number; reason: string}[] = [
        {
          desc: 'the gateway lands on the host’s own address',
          ext1: iface('ext1', '198.18.0.1/24', '198.18.0.10/24'),
          gwOffset: 1,
          reason: "interface ext1: --gw-offset 1 gives 198.18.0.1, which is this host's own address",
        },
        {
          desc: 'a /32 address has no other host for a gateway',
          ext1: iface('ext1', '198.18.0.10/32'),
          gwOffset: 1,
          reason: 'interface ext1: --gw-offset 1 falls outside the hosts of 198.18.0.10/32 (198.18.0.10..198.18.0.10)',
        },
        {
          desc: 'the offset leaves the subnet',
          ext1: iface('ext1', '198.18.0.10/30'),
          gwOffset: 3,
          reason: 'interface ext1: --gw-offset 3 falls outside the hosts of 198.18.0.8/30 (198.18.0.9..198.18.0.10)',
        },
        {
          desc: 'the name cannot go into rules',
          ext1: iface('ext1 -j', '198.18.0.10/24'),
          gwOffset: 1,
          reason: 'interface name "ext1 -j" cannot be used in rules',
        },
      ]
      for (const {desc, ext1, gwOffset, reason} of cases) {
        it(desc, () => {
          const got = plan(input, twoInterfaces(ext1), {...options, gwOffset})
          expect(got.interfaceFaults).to.deep.equal([{interface: ext1.name, reason}])
          // ext2 keeps the index it has beside a working ext1, so its mark and table do not move.
          expect(got.model.interfaces.map((i) => [i.name, i.index, i.table])).to.deep.equal([['ext2', 2, 7002]])
          expect(got.model.mappings.map((m) => [m.name, m.addresses.map((a) => a.address)])).to.deep.equal([
            ['b', ['198.18.2.10']],
            ['both', ['198.18.2.10']],
          ])
          expect(verdictOf(got, 'default/a')).to.deep.include({valid: true, invalid: 'no', configuredAddresses: {}, faults: {'198.18.0.10': reason}})
          expect(verdictOf(got, 'default/both')).to.deep.include({
            valid: true,
            configuredAddresses: {'198.18.2.10': {podIPs: []}},
            faults: {'198.18.0.10': reason},
          })
          expect(verdictOf(got, 'default/b')).to.not.have.property('faults')
        })
      }

      it('is the same plan whatever order the interfaces are listed in', () => {
        const ext1 = iface('ext1', '198.18.0.1/24', '198.18.0.10/24')
        const forward = plan(input, twoInterfaces(ext1), options)
        expect(plan(input, {interfaces: [ext1, iface('ext2', '198.18.2.10/24')]}, options)).to.deep.equal(forward)
      })
    })

    it('refuses more interfaces than the connection mark can number', () => {
      const many = {interfaces: Array.from({length: 256}, (_, i) => iface(`ext${i}`, `198.18.${i}.2/24`))}
      expect(plan(snapshot([]), {interfaces: many.interfaces.slice(0, 255)}, options).model.interfaces.at(-1)).to.include({
        index: 255,
        table: 7255,
      })
      expect(() => plan(snapshot([]), many, options)).to.throw('256 external interfaces have addresses; at most 255 fit in the connection mark')
    })

    it('refuses bad options', () => {
      expect(() => plan(snapshot([]), host, {...options, gwOffset: 0})).to.throw('--gw-offset must be a non-zero integer, got 0')
      expect(() => plan(snapshot([]), host, {...options, maxPortsPerMapping: 0})).to.throw(
        '--max-ports-per-mapping must be a positive integer, got 0',
      )
      expect(() => plan(snapshot([]), host, {...options, masquerade: false, clusterAddress: ip('198.18.4.100')})).to.throw(
        '--cluster-address 198.18.4.100 replaces the masquerade\'s source address, so it cannot go with --no-masquerade',
      )
    })

    it('masquerades to the HA cluster-side address when one is set, also after a pass the memo kept', () => {
      expect(plan(snapshot([]), host, options).model).to.not.have.property('masqueradeTo')
      const ha = {...options, clusterAddress: ip('198.18.4.100')}
      const memo = new PlanMemo()
      expect(plan(snapshot([]), host, ha, memo).model).to.include({masquerade: true, masqueradeTo: '198.18.4.100'})
      expect(plan(snapshot([]), host, ha, memo).model).to.include({masquerade: true, masqueradeTo: '198.18.4.100'})
    })
  })

  describe('egress', () => {
    const services = [service('a/web', '198.19.0.1'), service('b/web', '198.19.0.2'), service('c/web', '198.19.0.3')]
    const slices = [
      slice('a/web', 'web', [{ip: '198.19.200.10'}, {ip: '198.19.200.2'}]),
      slice('b/web', 'web', [{ip: '198.19.200.2'}, {ip: '198.19.200.3'}]),
      slice('c/web', 'web', [{ip: '198.19.200.3'}]),
    ]
    const mappings = [
      mapping('a/web', {addresses: ['198.18.1.10', '198.18.0.11'], created: '2024-01-01T00:00:00Z'}),
      mapping('b/web', {addresses: ['198.18.0.11'], ports: [{port: 81}], created: '2024-02-01T00:00:00Z'}),
      mapping('c/web', {addresses: ['198.18.1.10'], ports: [{port: 82}], created: '2024-03-01T00:00:00Z'}),
    ]
    const withPorts = services.map((s) => ({...s, spec: {...s.spec, ports: [{port: 80}, {port: 81}, {port: 82}]}}))

    it('sends each pod out with the first address of its oldest Mapping', () => {
      const got = plan(snapshot(mappings, withPorts, slices), host, {...options, snat: true})
      expect(got.model.egress).to.deep.equal([
        {address: '198.18.0.11', interface: 'eth1', podIPs: ['198.19.200.2', '198.19.200.3', '198.19.200.10'], mappings: ['a/web', 'b/web']},
      ])
    })

    it('is empty without --snat', () => {
      expect(plan(snapshot(mappings, withPorts, slices), host, options).model.egress).to.deep.equal([])
    })

    it('groups by address and lists only Mappings that contributed', () => {
      const got = plan(snapshot(mappings.slice(1), withPorts, slices), host, {...options, snat: true, masquerade: false})
      expect(got.model.egress).to.deep.equal([
        {address: '198.18.0.11', interface: 'eth1', podIPs: ['198.19.200.2', '198.19.200.3'], mappings: ['b/web']},
      ])
      expect(got.model.masquerade).to.equal(false)
      const c = plan(snapshot(mappings.slice(2), withPorts, slices), host, {...options, snat: true})
      expect(c.model.egress).to.deep.equal([{address: '198.18.1.10', interface: 'eth2', podIPs: ['198.19.200.3'], mappings: ['c/web']}])
    })
  })

  it('gives the same plan for the same input in any order', () => {
    const mappings = [
      mapping('a/one', {addresses: ['198.18.0.10', '198.18.1.10'], created: '2024-01-01T00:00:00Z', generation: 2}),
      mapping('b/two', {addresses: ['198.18.0.10'], created: '2024-01-01T00:00:00Z'}),
      mapping('b/three', {addresses: ['198.18.0.11'], ports: [{port: 80}, {port: 53, protocol: 'udp'}]}),
      mapping('c/four', {addresses: ['198.18.0.11', '198.18.9.9'], ports: [{port: 81}], created: '2023-01-01T00:00:00Z'}),
      mapping('c/dup', {addresses: ['198.18.0.10'], ports: [{port: 82}], resourceVersion: '5'}),
      mapping('c/dup', {addresses: ['198.18.0.11'], ports: [{port: 82}], resourceVersion: '5'}),
      mapping('c/bad', {addresses: ['198.18.0.10'], ports: 'all'}),
    ]
    const services = [
      service('a/web', '198.19.0.1'),
      service('b/web', '198.19.0.2', [{port: 80}, {port: 53, protocol: 'UDP'}]),
      service('c/web', '198.19.0.3', [{port: 81}, {port: 82}]),
    ]
    const slices = [
      slice('a/web-1', 'web', [{ip: '198.19.200.1'}, {ip: '198.19.200.20'}]),
      slice('a/web-2', 'web', [{ip: '198.19.200.3'}]),
      slice('b/web-1', 'web', [{ip: '198.19.200.3'}, {ip: '198.19.200.4'}]),
      slice('c/web-1', 'web', [{ip: '198.19.200.4'}, {ip: '198.19.200.5', ready: false}]),
    ]
    const opts = {...options, snat: true}
    const reference = plan(snapshot(mappings, services, slices), host, opts)
    expect(reference.model.mappings.length).to.be.greaterThan(2)
    expect(reference.model.egress.length).to.be.greaterThan(1)
    const shuffled = <T>(items: T[]) => fc.shuffledSubarray(items, {minLength: items.length})
    fc.assert(
      fc.property(shuffled(mappings), shuffled(services), shuffled(slices), shuffled(host.interfaces), (m, s, e, i) => {
        const got = plan(snapshot(m, s, e), {interfaces: i}, opts)
        expect(JSON.stringify(got)).to.equal(JSON.stringify(reference))
      }),
      {numRuns: 300, seed: 7001},
    )
  })

  describe('with a memo kept between plans', () => {
    const services = [service('a/web', '198.19.0.1'), service('b/web', '198.19.0.2', [{port: 80}, {port: 81}])]
    const web = mapping('a/one', {addresses: ['198.18.0.10'], allowedSources: ['198.18.9.0/24', '198.18.8.8']})
    const two = mapping('b/two', {addresses: ['198.18.0.11'], ports: [{port: 80}, {port: 81}], created: '2024-01-01T00:00:00Z'})
    const base = snapshot([web, two], services)
    const sourcesOf = (p: ReturnType<typeof plan>, name: string) => p.model.mappings.find((m) => m.name === name)?.allowedSources

    it('plans exactly what a plan without it gives, through every kind of change', () => {
      const steps: [string, Snapshot, PlanOptions][] = [
        ['first plan', base, options],
        ['same objects again', base, options],
        ['a Mapping replaced by an edited copy', snapshot([{...web, spec: {...web.spec!, addresses: ['198.18.0.11']}}, two], services), options],
        ['its Service replaced', snapshot([web, two], [services[0]!, service('b/web', '198.19.0.9', [{port: 80}, {port: 81}])]), options],
        ['its Service gone', snapshot([web, two], [services[0]!]), options],
        ['back to the first objects', base, options],
        ['a lower port limit', base, {...options, maxPortsPerMapping: 1}],
        ['the limit raised again', base, options],
        ['a newer Mapping taking the same endpoint', snapshot([web, two, mapping('c/late', {addresses: ['198.18.0.10'], created: '2025-01-01T00:00:00Z'})], services), options],
      ]
      const memo = new PlanMemo()
      for (const [step, input, opts] of steps) {
        expect(JSON.stringify(plan(input, host, opts, memo)), step).to.equal(JSON.stringify(plan(input, host, opts)))
      }
    })

    it('re-plans only the Mappings a change reaches, keeping the very objects of the rest', () => {
      const memo = new PlanMemo()
      const first = plan(base, host, options, memo)
      expect(memo.replanned, 'a first plan').to.equal(2)
      const same = plan(base, host, options, memo)
      expect(memo.replanned, 'the same objects').to.equal(0)
      expect(same.model.mappings[0]).to.equal(first.model.mappings[0])
      const newService = snapshot([web, two], [services[0]!, service('b/web', '198.19.0.9', [{port: 80}, {port: 81}])])
      const again = plan(newService, host, options, memo)
      expect(memo.replanned, "b/two's Service replaced").to.equal(1)
      expect(sourcesOf(again, 'one')).to.equal(sourcesOf(first, 'one'))
      expect(again.model.mappings.find((m) => m.name === 'two')?.serviceVIP).to.equal('198.19.0.9')
      // A copy equal to what it replaces is planned again, and its result is the object planned before.
      const copied = plan(snapshot([web, two], [services[0]!, service('b/web', '198.19.0.9', [{port: 80}, {port: 81}])]), host, options, memo)
      expect(memo.replanned).to.equal(1)
      expect(copied.model.mappings.find((m) => m.name === 'two')).to.equal(again.model.mappings.find((m) => m.name === 'two'))
      plan(base, host, {...options, maxPortsPerMapping: 5}, memo)
      expect(memo.replanned, 'other options: all of it').to.equal(2)
      plan(base, {interfaces: [...host.interfaces, iface('eth9', '198.18.5.1/24')]}, {...options, maxPortsPerMapping: 5}, memo)
      expect(memo.replanned, 'another host: all of it').to.equal(2)
    })
  })

  describe('examples', () => {
    function readExample(file: string): Snapshot {
      const objects = parseAllDocuments(readFileSync(new URL(`../../examples/${file}`, import.meta.url), 'utf8')).map((d) => d.toJS())
      const ofKind = <T>(kind: string) => objects.filter((o) => o.kind === kind) as T[]
      expect(objects.map((o) => o.kind)).to.deep.equal(['Mapping', 'Service', 'EndpointSlice'])
      return snapshot(ofKind('Mapping'), ofKind('Service'), ofKind('EndpointSlice'))
    }
    const edge: HostInfo = {interfaces: [iface('eth1', '198.18.0.10/24', '198.18.0.11/24', '198.18.0.12/24')]}

    it('echo-service.yaml exposes 198.18.0.10:8080 to the echo Service', () => {
      const got = plan(readExample('echo-service.yaml'), edge, options)
      expect(got.verdicts.map((v) => v.invalid)).to.deep.equal(['no'])
      const [m] = got.model.mappings
      expect(m).to.include({namespace: 'default', name: 'mapping-echo-service', serviceVIP: '198.19.100.10'})
      expect(m!.allowedSources).to.deep.equal(['0.0.0.0/0'])
      expect(m!.podIPs).to.deep.equal(['198.19.200.11', '198.19.200.12'])
      expect(m!.endpoints).to.deep.equal([
        {address: '198.18.0.10', protocol: 'tcp', port: 8080, targetIP: '198.19.100.10', targetPort: 8080},
      ])
    })

    it('multi-port.yaml translates ports on two addresses for two allowed sources', () => {
      const got = plan(readExample('multi-port.yaml'), edge, options)
      expect(got.verdicts.map((v) => v.invalid)).to.deep.equal(['no'])
      const [m] = got.model.mappings
      expect(m!.allowedSources).to.deep.equal(['198.18.100.0/24', '198.18.200.7/32'])
      expect(m!.podIPs).to.deep.equal(['198.19.200.21', '198.19.200.22'])
      expect(m!.endpoints.map((e) => `${e.address} ${e.protocol}/${e.port} -> ${e.targetIP}:${e.targetPort}`)).to.deep.equal([
        '198.18.0.11 tcp/53 -> 198.19.100.20:5353',
        '198.18.0.11 tcp/2222 -> 198.19.100.20:22',
        '198.18.0.11 tcp/8443 -> 198.19.100.20:8443',
        '198.18.0.11 udp/53 -> 198.19.100.20:5353',
        '198.18.0.12 tcp/53 -> 198.19.100.20:5353',
        '198.18.0.12 tcp/2222 -> 198.19.100.20:22',
        '198.18.0.12 tcp/8443 -> 198.19.100.20:8443',
        '198.18.0.12 udp/53 -> 198.19.100.20:5353',
      ])
    })
  })
})
