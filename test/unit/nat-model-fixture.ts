/** A hand-built NatModel shared by the renderer and tracer tests: three interfaces, masquerade, egress. */
import {parseCidr, parseIpv4, type Cidr, type Ipv4} from '../../src/lib/net/ipv4.js'
import type {NatEndpoint, NatMapping, NatModel} from '../../src/lib/plan/model.js'

export function ip(text: string): Ipv4 {
  const parsed = parseIpv4(text)
  if (!parsed) throw new Error(`bad address in test data: ${text}`)
  return parsed
}

export function cidr(text: string): Cidr {
  const parsed = parseCidr(text)
  if (!parsed.ok) throw new Error(`bad CIDR in test data: ${text}`)
  return parsed.cidr
}

function endpoint(address: string, spec: string, target: string): NatEndpoint {
  const [protocol, port] = spec.split('/') as ['tcp' | 'udp', string]
  const [targetIP, targetPort] = target.split(':') as [string, string]
  return {address: ip(address), protocol, port: Number(port), targetIP: ip(targetIP), targetPort: Number(targetPort)}
}

function mapping(
  key: string,
  addresses: [string, string][],
  allowedSources: string[],
  vip: string,
  endpoints: NatEndpoint[],
  podIPs: string[] = [],
): NatMapping {
  const [namespace, name] = key.split('/') as [string, string]
  return {
    namespace,
    name,
    addresses: addresses.map(([address, iface]) => ({address: ip(address), interface: iface})),
    allowedSources: allowedSources.map(cidr),
    serviceVIP: ip(vip),
    podIPs: podIPs.map(ip),
    endpoints,
  }
}

/**
 * eth1 and eth2 have reply tables, eth3 is the default-gateway interface. 198.18.0.10 carries
 * two Mappings (web on tcp/80 with port translation, dns on udp/53); 198.18.1.10 reuses tcp/80
 * for another Service and its pods leave with that address (egress).
 */
export function sampleModel(options: {masquerade?: boolean; egress?: boolean} = {}): NatModel {
  return {
    masquerade: options.masquerade ?? true,
    interfaces: [
      {name: 'eth1', index: 1, table: 7001, subnets: [{cidr: cidr('198.18.0.0/24'), source: ip('198.18.0.10')}], gateway: ip('198.18.0.1')},
      {
        name: 'eth2',
        index: 2,
        table: 7002,
        subnets: [
          {cidr: cidr('198.18.1.0/24'), source: ip('198.18.1.10')},
          {cidr: cidr('198.18.3.0/25'), source: ip('198.18.3.5')},
        ],
        gateway: ip('198.18.1.254'),
      },
      {name: 'eth3', index: 3, subnets: [{cidr: cidr('198.18.2.0/24'), source: ip('198.18.2.10')}]},
    ],
    mappings: [
      mapping('default/dns', [['198.18.0.10', 'eth1']], ['10.0.0.0/8', '198.18.5.5'], '198.19.100.11', [
        endpoint('198.18.0.10', 'udp/53', '198.19.100.11:53'),
      ]),
      mapping(
        'default/web',
        [['198.18.0.10', 'eth1'], ['198.18.2.10', 'eth3']],
        ['0.0.0.0/0'],
        '198.19.100.10',
        [
          endpoint('198.18.0.10', 'tcp/80', '198.19.100.10:8080'),
          endpoint('198.18.0.10', 'tcp/443', '198.19.100.10:8443'),
          endpoint('198.18.2.10', 'tcp/80', '198.19.100.10:8080'),
        ],
      ),
      mapping(
        'shop/web',
        [['198.18.1.10', 'eth2']],
        ['198.18.7.0/24'],
        '198.19.100.20',
        [endpoint('198.18.1.10', 'tcp/80', '198.19.100.20:80')],
        ['10.244.1.5', '10.244.1.6'],
      ),
    ],
    egress: options.egress === false ? [] : [{address: ip('198.18.1.10'), interface: 'eth2', podIPs: [ip('10.244.1.5'), ip('10.244.1.6')], mappings: ['shop/web']}],
  }
}

/**
 * The sample model with egress through 40 addresses, 20 on eth1 (198.18.0.20-39) then 20 on eth2
 * (198.18.1.20-39). Pod 10.244.0.1 egresses through every eth1 address; 10.244.0.4 through the
 * first eth1 address and every eth2 address; 10.244.9.9 through the last eth2 address only.
 */
export function manyEgressModel(): NatModel {
  const model = sampleModel()
  model.egress = []
  for (const [subnet, iface] of [['198.18.0', 'eth1'], ['198.18.1', 'eth2']] as const) {
    for (let host = 20; host < 40; host++) {
      const podIPs = iface === 'eth1' ? (host === 20 ? ['10.244.0.1', '10.244.0.2', '10.244.0.3', '10.244.0.4'] : ['10.244.0.1']) : host === 39 ? ['10.244.0.4', '10.244.9.9'] : ['10.244.0.4']
      model.egress.push({address: ip(`${subnet}.${host}`), interface: iface, podIPs: podIPs.map(ip), mappings: [`egress/m-${subnet}-${host}`]})
    }
  }
  return model
}

/** Two external interfaces with reply tables, two Mappings, masquerade and egress; 198.18.0.0/15 only. */
export function kernelTestModel(): NatModel {
  return {
    masquerade: true,
    interfaces: [
      {name: 'ext1', index: 1, table: 7001, subnets: [{cidr: cidr('198.18.0.0/24'), source: ip('198.18.0.10')}], gateway: ip('198.18.0.1')},
      {name: 'ext2', index: 2, table: 7002, subnets: [{cidr: cidr('198.18.2.0/24'), source: ip('198.18.2.10')}], gateway: ip('198.18.2.1')},
    ],
    mappings: [
      {
        namespace: 'default',
        name: 'web',
        addresses: [{address: ip('198.18.0.10'), interface: 'ext1'}],
        allowedSources: [cidr('0.0.0.0/0')],
        serviceVIP: ip('198.19.100.10'),
        podIPs: [ip('198.19.200.11')],
        endpoints: [
          {address: ip('198.18.0.10'), protocol: 'tcp', port: 80, targetIP: ip('198.19.100.10'), targetPort: 8080},
          {address: ip('198.18.0.10'), protocol: 'udp', port: 53, targetIP: ip('198.19.100.10'), targetPort: 5353},
        ],
      },
      {
        namespace: 'shop',
        name: 'api',
        addresses: [{address: ip('198.18.2.10'), interface: 'ext2'}],
        allowedSources: [cidr('198.18.3.0/24'), cidr('198.18.1.2/32')],
        serviceVIP: ip('198.19.100.20'),
        podIPs: [ip('198.19.200.21'), ip('198.19.200.22')],
        endpoints: [{address: ip('198.18.2.10'), protocol: 'tcp', port: 443, targetIP: ip('198.19.100.20'), targetPort: 8443}],
      },
    ],
    egress: [{address: ip('198.18.2.10'), interface: 'ext2', podIPs: [ip('198.19.200.21'), ip('198.19.200.22')], mappings: ['shop/api']}],
  }
}
