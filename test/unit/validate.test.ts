import {expect} from 'chai'
import fc from 'fast-check'
import {resolveService} from '../../src/lib/mapping/service.js'
import type {MappingResource, ServiceResource, ValidMappingSpec} from '../../src/lib/mapping/types.js'
import {validateMapping} from '../../src/lib/mapping/validate.js'

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child)
    Object.freeze(value)
  }
  return value
}

function mapping(spec: Record<string, unknown>, metadata: Record<string, unknown> = {}): MappingResource {
  return deepFreeze({
    apiVersion: 'smartnat.aureacentral.com/v1alpha1',
    kind: 'Mapping',
    metadata: {name: 'web', namespace: 'default', ...metadata},
    spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}], ...spec},
  } as MappingResource)
}

const limits = {maxPortsPerMapping: 50}

function reasonOf(m: MappingResource, options = limits): string {
  const result = validateMapping(m, options)
  return result.ok ? 'ok' : result.reason
}

describe('validateMapping', () => {
  const cases: {desc: string; input: MappingResource; want: string; maxPorts?: number}[] = [
    {desc: 'name missing', input: mapping({}, {name: undefined}), want: 'metadata.name is missing'},
    {
      desc: 'name with capitals',
      input: mapping({}, {name: 'Web'}),
      want: 'metadata.name "Web" must be a DNS-1123 subdomain (lowercase letters, digits, "-" and ".", at most 253 characters)',
    },
    {
      desc: 'name with a newline is shown escaped',
      input: mapping({}, {name: 'web\n-j ACCEPT'}),
      want: 'metadata.name "web\\n-j ACCEPT" must be a DNS-1123 subdomain (lowercase letters, digits, "-" and ".", at most 253 characters)',
    },
    {
      desc: 'name starting with a dash',
      input: mapping({}, {name: '--flush'}),
      want: 'metadata.name "--flush" must be a DNS-1123 subdomain (lowercase letters, digits, "-" and ".", at most 253 characters)',
    },
    {desc: 'namespace missing', input: mapping({}, {namespace: undefined}), want: 'metadata.namespace is missing'},
    {
      desc: 'namespace with a dot',
      input: mapping({}, {namespace: 'team.a'}),
      want: 'metadata.namespace "team.a" must be a DNS-1123 label (lowercase letters, digits and "-", at most 63 characters)',
    },
    {
      desc: 'namespace too long',
      input: mapping({}, {namespace: 'a'.repeat(64)}),
      want: `metadata.namespace "${'a'.repeat(64)}" must be a DNS-1123 label (lowercase letters, digits and "-", at most 63 characters)`,
    },
    {
      desc: 'spec missing',
      input: deepFreeze({metadata: {name: 'web', namespace: 'default'}}),
      want: 'spec is missing',
    },
    {desc: 'addresses missing', input: mapping({addresses: undefined}), want: 'addresses is missing, and no addressPool is named to draw one from'},
    {desc: 'addresses not a list', input: mapping({addresses: '198.18.0.10'}), want: 'addresses must be a list of IPv4 addresses'},
    {desc: 'addresses empty', input: mapping({addresses: []}), want: 'addresses is empty, and no addressPool is named to draw one from'},
    {
      desc: 'addresses and addressPool both',
      input: mapping({addressPool: 'edge'}),
      want: 'addresses and addressPool exclude each other: list addresses, or leave them empty and name an addressPool',
    },
    {
      desc: 'addressPool not a name',
      input: mapping({addresses: [], addressPool: 'Edge Pool'}),
      want: 'addressPool "Edge Pool" must be the name of an AddressPool (a DNS-1123 subdomain)',
    },
    {
      desc: 'addressPool, nothing allocated',
      input: mapping({addresses: undefined, addressPool: 'edge'}),
      want: 'no address or port allocated yet: status.allocated records none that fits the spec',
    },
    {
      desc: 'address out of range',
      input: mapping({addresses: ['198.18.0.10', '10.0.0.300']}),
      want: 'addresses[1] "10.0.0.300" is not an IPv4 address',
    },
    {desc: 'address with a prefix', input: mapping({addresses: ['198.18.0.0/24']}), want: 'addresses[0] "198.18.0.0/24" is not an IPv4 address'},
    {desc: 'address with a space', input: mapping({addresses: ['198.18.0.10 ']}), want: 'addresses[0] "198.18.0.10 " is not an IPv4 address'},
    {desc: 'address as a number', input: mapping({addresses: [3323068426]}), want: 'addresses[0] 3323068426 is not an IPv4 address'},
    {
      desc: 'address listed twice',
      input: mapping({addresses: ['198.18.0.10', '198.18.0.11', '198.18.0.10']}),
      want: 'addresses[2] "198.18.0.10" is listed twice (also addresses[0])',
    },
    {
      desc: 'allowedSources not a list',
      input: mapping({allowedSources: '10.0.0.0/8'}),
      want: 'allowedSources must be a list of CIDRs or IPv4 addresses',
    },
    {
      desc: 'allowedSources prefix too long',
      input: mapping({allowedSources: ['10.0.0.0/8', '10.0.0.0/33']}),
      want: 'allowedSources[1] "10.0.0.0/33": prefix length must be 0..32',
    },
    {
      desc: 'allowedSources bad address',
      input: mapping({allowedSources: ['10.0.0.300']}),
      want: 'allowedSources[0] "10.0.0.300": "10.0.0.300" is not an IPv4 address',
    },
    {
      desc: 'allowedSources not a string',
      input: mapping({allowedSources: [42]}),
      want: 'allowedSources[0] 42: must be a string like 203.0.113.0/24',
    },
    {desc: 'serviceName missing', input: mapping({serviceName: undefined}), want: 'serviceName is missing'},
    {
      desc: 'serviceName starting with a digit',
      input: mapping({serviceName: '1web'}),
      want: 'serviceName "1web" must be a DNS-1035 label (lowercase letters, digits and "-", starting with a letter, at most 63 characters)',
    },
    {
      desc: 'serviceName with quotes',
      input: mapping({serviceName: 'web" -j DROP'}),
      want: 'serviceName "web\\" -j DROP" must be a DNS-1035 label (lowercase letters, digits and "-", starting with a letter, at most 63 characters)',
    },
    {desc: 'mode unknown', input: mapping({mode: 'Service'}), want: 'mode "Service" is unknown (only "service" or "direct")'},
    {desc: 'ports missing', input: mapping({ports: undefined}), want: 'ports is missing'},
    {desc: 'ports not a list', input: mapping({ports: {port: 80}}), want: 'ports must be a list'},
    {desc: 'ports empty', input: mapping({ports: []}), want: 'ports is empty'},
    {
      desc: 'more ports than the limit',
      input: mapping({ports: [{port: 1}, {port: 2}, {port: 3}]}),
      maxPorts: 2,
      want: 'ports lists 3 entries, more than the limit of 2 (raise it with --max-ports-per-mapping)',
    },
    {
      desc: 'port entry not an object',
      input: mapping({ports: [{port: 80}, 443]}),
      want: 'ports[1] must be an object with port, protocol and servicePort',
    },
    {desc: 'port missing, nothing allocated', input: mapping({ports: [{servicePort: 80}]}), want: 'no address or port allocated yet: status.allocated records none that fits the spec'},
    {
      desc: 'port and servicePort missing',
      input: mapping({ports: [{protocol: 'udp'}]}),
      want: 'ports[0] has neither port nor servicePort (leaving port out allocates one, but servicePort must say where it leads)',
    },
    {
      desc: 'the same port left to allocation twice',
      input: mapping({ports: [{servicePort: 80}, {port: 8080}, {servicePort: 80, protocol: 'TCP'}]}),
      want: 'ports[2] asks for a tcp to servicePort 80 twice (also ports[0])',
    },
    {desc: 'port as a string', input: mapping({ports: [{port: '80'}]}), want: 'ports[0].port "80" must be an integer in 1..65535'},
    {desc: 'port zero', input: mapping({ports: [{port: 0}]}), want: 'ports[0].port 0 must be an integer in 1..65535'},
    {desc: 'port fractional', input: mapping({ports: [{port: 80.5}]}), want: 'ports[0].port 80.5 must be an integer in 1..65535'},
    {
      desc: 'servicePort too large',
      input: mapping({ports: [{port: 80}, {port: 81}, {port: 82, servicePort: 70000}]}),
      want: 'ports[2].servicePort 70000 must be an integer in 1..65535',
    },
    {desc: 'protocol unknown', input: mapping({ports: [{port: 80, protocol: 'sctp'}]}), want: 'ports[0].protocol "sctp" must be tcp or udp'},
    {desc: 'protocol not a string', input: mapping({ports: [{port: 80, protocol: 6}]}), want: 'ports[0].protocol 6 must be tcp or udp'},
    {
      desc: 'duplicate protocol and port, case-insensitively',
      input: mapping({ports: [{port: 80}, {port: 80, protocol: 'udp'}, {port: 80, protocol: 'TCP', servicePort: 8080}]}),
      want: 'ports[2] tcp/80 is listed twice (also ports[0])',
    },
    {
      desc: 'first error wins: addresses are checked before ports',
      input: mapping({addresses: ['bad'], ports: [{port: 0}]}),
      want: 'addresses[0] "bad" is not an IPv4 address',
    },
    {
      desc: 'long values are cut in messages',
      input: mapping({addresses: ['x'.repeat(200)]}),
      want: `addresses[0] "${'x'.repeat(79)}... is not an IPv4 address`,
    },
  ]
  for (const {desc, input, want, maxPorts} of cases) {
    it(desc, () => expect(reasonOf(input, {maxPortsPerMapping: maxPorts ?? 50})).to.equal(want))
  }

  it('accepts a manifest of the original product and applies its defaults', () => {
    const input = mapping({
      allowedSources: undefined,
      mode: undefined,
      ports: [{port: 8080}, {port: 53, protocol: 'Udp', servicePort: 5353}, {port: 22, protocol: 'TCP'}],
    })
    const before = structuredClone(input)
    const result = validateMapping(input, limits)
    const want: ValidMappingSpec = {
      addresses: ['198.18.0.10'] as ValidMappingSpec['addresses'],
      allowedSources: ['0.0.0.0/0'] as ValidMappingSpec['allowedSources'],
      serviceName: 'web',
      mode: 'service',
      ports: [
        {port: 8080, protocol: 'tcp', servicePort: 8080},
        {port: 53, protocol: 'udp', servicePort: 5353},
        {port: 22, protocol: 'tcp', servicePort: 22},
      ],
    }
    expect(result).to.deep.equal({ok: true, spec: want})
    expect(input).to.deep.equal(before)
  })

  it('treats empty and null allowedSources as everyone, null protocol and servicePort as defaults', () => {
    for (const allowedSources of [[], null]) {
      const result = validateMapping(mapping({allowedSources, mode: null, ports: [{port: 80, protocol: null, servicePort: null}]}), limits)
      expect(result).to.deep.equal({
        ok: true,
        spec: {
          addresses: ['198.18.0.10'],
          allowedSources: ['0.0.0.0/0'],
          serviceName: 'web',
          mode: 'service',
          ports: [{port: 80, protocol: 'tcp', servicePort: 80}],
        },
      })
    }
  })

  it('accepts mode direct', () => {
    const result = validateMapping(mapping({mode: 'direct'}), limits)
    expect(result.ok && result.spec.mode).to.equal('direct')
  })

  it('reads bare source addresses as /32, clears host bits and drops repeats', () => {
    const result = validateMapping(mapping({allowedSources: ['203.0.113.7', '10.1.2.3/8', '10.0.0.0/8', '203.0.113.7/32']}), limits)
    expect(result.ok && result.spec.allowedSources).to.deep.equal(['203.0.113.7/32', '10.0.0.0/8'])
  })

  it('accepts dotted names, exactly the port limit and the edges of the port range', () => {
    const ports = [{port: 1, servicePort: 65535}, {port: 65535, protocol: 'udp', servicePort: 1}]
    const result = validateMapping(mapping({ports}, {name: 'web.v2'}), {maxPortsPerMapping: 2})
    expect(result.ok && result.spec.ports).to.deep.equal([
      {port: 1, protocol: 'tcp', servicePort: 65535},
      {port: 65535, protocol: 'udp', servicePort: 1},
    ])
  })

  it('never passes a value that is not a plain name, address, prefix or port', () => {
    // Valid values, the same values with a few arbitrary characters around them, and anything at all.
    const field = (...valid: unknown[]) =>
      fc.oneof(
        {weight: 12, arbitrary: fc.constantFrom(...valid)},
        {weight: 2, arbitrary: fc.tuple(fc.string({maxLength: 2}), fc.constantFrom(...valid), fc.string({maxLength: 2})).map((t) => t.join(''))},
        {weight: 1, arbitrary: fc.anything()},
      )
    const port = fc.record(
      {port: field(1, 80, 65535), protocol: field('tcp', 'UDP', undefined), servicePort: field(8080, undefined)},
      {requiredKeys: ['port']},
    )
    const input = fc.record({
      name: field('web', 'web.v2', 'a-b'),
      namespace: field('default', 'team-a'),
      addresses: fc.uniqueArray(field('198.18.0.10', '198.18.0.11', '198.19.255.255'), {minLength: 1, maxLength: 3}),
      allowedSources: fc.oneof(fc.array(field('10.0.0.0/8', '203.0.113.7', '0.0.0.0/0'), {maxLength: 3}), fc.constant(undefined)),
      serviceName: field('web', 'echo-test-service'),
      mode: field('service', undefined),
      ports: fc.uniqueArray(port, {minLength: 1, maxLength: 3, selector: (p) => p.port}),
    })
    let accepted = 0
    fc.assert(
      fc.property(input, ({name, namespace, ...spec}) => {
        const result = validateMapping(mapping(spec, {name, namespace}), limits)
        if (!result.ok) return
        accepted++
        expect(name).to.match(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/)
        expect(namespace).to.match(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/)
        expect(result.spec.serviceName).to.match(/^[a-z]([-a-z0-9]*[a-z0-9])?$/)
        for (const a of result.spec.addresses) expect(a).to.match(/^\d{1,3}(\.\d{1,3}){3}$/)
        for (const c of result.spec.allowedSources) expect(c).to.match(/^\d{1,3}(\.\d{1,3}){3}\/\d{1,2}$/)
        for (const p of result.spec.ports) {
          expect(p.protocol).to.be.oneOf(['tcp', 'udp'])
          for (const n of [p.port, p.servicePort]) expect(Number.isInteger(n) && n >= 1 && n <= 65535).to.equal(true)
        }
      }),
      {numRuns: 3000, seed: 20190},
    )
    // The property means little unless a fair share of the inputs was accepted.
    expect(accepted).to.be.greaterThan(150)
  })
})

describe('resolveService', () => {
  const spec: ValidMappingSpec = {
    addresses: [],
    allowedSources: [],
    serviceName: 'web',
    mode: 'service',
    ports: [
      {port: 80, protocol: 'tcp', servicePort: 8080},
      {port: 53, protocol: 'udp', servicePort: 53},
    ],
  }
  function service(svcSpec: ServiceResource['spec']): ServiceResource {
    return deepFreeze({metadata: {name: 'web', namespace: 'default'}, spec: svcSpec})
  }
  const ports = [{port: 8080}, {port: 53, protocol: 'UDP'}]

  const cases: {desc: string; input: ServiceResource | undefined; want: string}[] = [
    {desc: 'missing Service', input: undefined, want: 'service "web" not found in namespace "default"'},
    {
      desc: 'ExternalName Service',
      input: service({type: 'ExternalName', externalName: 'example.com', ports}),
      want: 'service default/web is of type ExternalName; mode service needs a ClusterIP',
    },
    {
      desc: 'headless Service',
      input: service({clusterIP: 'None', ports}),
      want: 'service default/web is headless (clusterIP None); mode service needs a ClusterIP',
    },
    {desc: 'IPv6-only Service', input: service({clusterIP: 'fd00::10', clusterIPs: ['fd00::10'], ports}), want: 'service default/web has no IPv4 ClusterIP'},
    {desc: 'Service without a ClusterIP', input: service({ports}), want: 'service default/web has no IPv4 ClusterIP'},
    {
      desc: 'Service without the port',
      input: service({clusterIP: '198.19.0.10', ports: [{port: 80}, {port: 53, protocol: 'UDP'}]}),
      want: 'service default/web has no tcp port 8080',
    },
    {
      desc: 'Service with the port on the other protocol',
      input: service({clusterIP: '198.19.0.10', ports: [{port: 8080}, {port: 53, protocol: 'TCP'}]}),
      want: 'service default/web has no udp port 53',
    },
    {desc: 'usable Service', input: service({clusterIP: '198.19.0.10', ports}), want: 'ok 198.19.0.10'},
    {
      desc: 'dual-stack Service with IPv6 first',
      input: service({clusterIP: 'fd00::10', clusterIPs: ['fd00::10', '198.19.0.11'], ports: [{port: 8080, protocol: 'tcp'}, {port: 53, protocol: 'udp'}]}),
      want: 'ok 198.19.0.11',
    },
  ]
  for (const {desc, input, want} of cases) {
    it(desc, () => {
      const got = resolveService('default', spec, input)
      expect(got.ok ? `ok ${got.serviceVIP}` : got.reason).to.equal(want)
    })
  }
})

describe('validateMapping of a Mapping that asks for an address or a port', () => {
  const asking = (status: unknown, extra: Partial<MappingResource> = {}): MappingResource => ({
    apiVersion: 'smartnat.aureacentral.com/v1alpha1',
    kind: 'Mapping',
    metadata: {name: 'web', namespace: 'default'},
    spec: {addressPool: 'edge', serviceName: 'web', ports: [{port: 443}, {servicePort: 80}, {servicePort: 53, protocol: 'UDP'}]},
    status: {allocated: status} as MappingResource['status'],
    ...extra,
  })
  const record = {pool: 'edge', addresses: ['198.18.0.20'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}, {protocol: 'udp', servicePort: 53, port: 30000}]}

  it('is planned on what status.allocated records', () => {
    const result = validateMapping(asking(record), limits)
    expect(result).to.deep.equal({
      ok: true,
      spec: {
        addresses: ['198.18.0.20'],
        allowedSources: ['0.0.0.0/0'],
        serviceName: 'web',
        mode: 'service',
        ports: [{port: 443, protocol: 'tcp', servicePort: 443}, {port: 30000, protocol: 'tcp', servicePort: 80}, {port: 30000, protocol: 'udp', servicePort: 53}],
      },
    })
  })

  const unfit: {desc: string; status: unknown}[] = [
    {desc: 'another pool', status: {...record, pool: 'other'}},
    {desc: 'a port missing', status: {...record, ports: record.ports.slice(0, 1)}},
    {desc: 'two addresses', status: {...record, addresses: ['198.18.0.20', '198.18.0.21']}},
    {desc: 'a port the spec lists itself', status: {...record, ports: [{protocol: 'tcp', servicePort: 80, port: 443}, record.ports[1]]}},
    {desc: 'a record that does not parse', status: {...record, ports: [{protocol: 'sctp', servicePort: 80, port: 1}]}},
  ]
  for (const {desc, status} of unfit) {
    it(`is not planned on a record with ${desc}`, () => expect(reasonOf(asking(status))).to.equal('no address or port allocated yet: status.allocated records none that fits the spec'))
  }

  it('is not planned while marked pending, whatever it records, and says why', () => {
    expect(reasonOf(asking(record, {pending: 'not allocated: AddressPool edge has no free address'}))).to.equal('not allocated: AddressPool edge has no free address')
  })

  it('reports a spec error before waiting for allocation', () => {
    expect(reasonOf(asking(record, {pending: 'not allocated: x', spec: {addressPool: 'edge', serviceName: 'Web', ports: [{servicePort: 80}]}}))).to.match(/^serviceName "Web"/)
  })
})
