import type {TracePacket} from '../../src/lib/backend/trace-packet.js'

/** A packet through sampleModel() and the outcome both backends' tracers must agree on. */
export type SampleFlow = TracePacket & {name: string; want: string; interfaceIndex?: number}

/** The flows through sampleModel(); only the rule that drops an unallowed source is backend-specific. */
export function sampleFlows(dropUnallowed: string): SampleFlow[] {
  return [
    {name: 'tcp with port translation', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1', want: 'dnat 198.19.100.10:8080 default/web masq', interfaceIndex: 1},
    {name: 'second port of the same Mapping', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 443, inInterface: 'eth1', want: 'dnat 198.19.100.10:8443 default/web masq'},
    {name: 'udp from an allowed CIDR', src: '10.200.3.4', dst: '198.18.0.10', protocol: 'udp', port: 53, inInterface: 'eth1', want: 'dnat 198.19.100.11:53 default/dns masq'},
    {name: 'udp from the allowed bare address', src: '198.18.5.5', dst: '198.18.0.10', protocol: 'udp', port: 53, inInterface: 'eth1', want: 'dnat 198.19.100.11:53 default/dns masq'},
    {name: 'udp from the address next to the allowed one', src: '198.18.5.6', dst: '198.18.0.10', protocol: 'udp', port: 53, inInterface: 'eth1', want: `drop ${dropUnallowed}`},
    {name: 'udp from just outside the allowed CIDR', src: '11.0.0.0', dst: '198.18.0.10', protocol: 'udp', port: 53, inInterface: 'eth1', want: `drop ${dropUnallowed}`},
    {name: 'tcp to a port mapped only for udp', src: '10.200.3.4', dst: '198.18.0.10', protocol: 'tcp', port: 53, inInterface: 'eth1', want: 'not-ours'},
    {name: 'same port on another address, another Service', src: '198.18.7.200', dst: '198.18.1.10', protocol: 'tcp', port: 80, inInterface: 'eth2', want: 'dnat 198.19.100.20:80 shop/web masq', interfaceIndex: 2},
    {name: 'same port on another address, source not allowed there', src: '203.0.113.5', dst: '198.18.1.10', protocol: 'tcp', port: 80, inInterface: 'eth2', want: `drop ${dropUnallowed}`},
    {name: '0.0.0.0/0 admits the lowest address', src: '0.0.0.1', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1', want: 'dnat 198.19.100.10:8080 default/web masq'},
    {name: '0.0.0.0/0 admits the highest address', src: '255.255.255.254', dst: '198.18.0.10', protocol: 'tcp', port: 80, inInterface: 'eth1', want: 'dnat 198.19.100.10:8080 default/web masq'},
    {name: 'default-gateway interface is marked too', src: '203.0.113.5', dst: '198.18.2.10', protocol: 'tcp', port: 80, inInterface: 'eth3', want: 'dnat 198.19.100.10:8080 default/web masq', interfaceIndex: 3},
    {name: 'address that no Mapping uses', src: '203.0.113.5', dst: '198.18.9.9', protocol: 'tcp', port: 80, inInterface: 'eth1', want: 'not-ours'},
    {name: 'unmapped port on a mapped address', src: '203.0.113.5', dst: '198.18.0.10', protocol: 'tcp', port: 22, inInterface: 'eth1', want: 'not-ours'},
    {name: 'egress from a Mapping pod', src: '10.244.1.5', dst: '203.0.113.80', protocol: 'tcp', port: 443, outInterface: 'eth2', want: 'snat 198.18.1.10', interfaceIndex: 2},
    {name: 'egress from a pod leaving by another interface', src: '10.244.1.5', dst: '203.0.113.80', protocol: 'tcp', port: 443, outInterface: 'eth1', want: 'not-ours', interfaceIndex: 2},
    {name: 'egress from a pod of no Mapping', src: '10.244.1.7', dst: '203.0.113.80', protocol: 'tcp', port: 443, outInterface: 'eth2', want: 'not-ours'},
  ]
}
