/**
 * Real TCP and UDP through the nftables backend in the namespace lab: allow-lists, port
 * translation, replies routed back out of the interface a connection came in on, and what a
 * FORWARD policy of DROP in iptables' own table does to smartnat's forward accept.
 */
import {expect} from 'chai'
import {applyNftables} from '../../src/lib/backend/nftables/apply.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {shortHash} from '../../src/lib/net/hash.js'
import {parseCidr, parseIpv4, type Cidr, type Ipv4} from '../../src/lib/net/ipv4.js'
import type {NatModel} from '../../src/lib/plan/model.js'
import {createLab, requireLab, type EchoResult, type Lab} from '../support/lab.js'

function ip(text: string): Ipv4 {
  const parsed = parseIpv4(text)
  if (!parsed) throw new Error(`bad address in test data: ${text}`)
  return parsed
}

function cidr(text: string): Cidr {
  const parsed = parseCidr(text)
  if (!parsed.ok) throw new Error(`bad prefix in test data: ${text}`)
  return parsed.cidr
}

/** eth1 and eth2 with reply tables; web on both addresses, allowed from client1's first address and client2. */
function model(): NatModel {
  return {
    masquerade: true,
    interfaces: [
      {name: 'eth1', index: 1, table: 7001, subnets: [{cidr: cidr('198.18.0.0/24'), source: ip('198.18.0.10')}], gateway: ip('198.18.0.1')},
      {name: 'eth2', index: 2, table: 7002, subnets: [{cidr: cidr('198.18.2.0/24'), source: ip('198.18.2.10')}], gateway: ip('198.18.2.1')},
    ],
    mappings: [
      {
        namespace: 'default',
        name: 'web',
        id: shortHash('default/web'),
        addresses: [
          {address: ip('198.18.0.10'), interface: 'eth1'},
          {address: ip('198.18.2.10'), interface: 'eth2'},
        ],
        allowedSources: [cidr('198.18.1.2/32'), cidr('198.18.3.0/24')],
        serviceVIP: ip('198.19.100.10'),
        podIPs: [ip('198.19.200.11'), ip('198.19.200.12')],
        endpoints: [
          {address: ip('198.18.0.10'), protocol: 'tcp', port: 8000, targetIP: ip('198.19.100.10'), targetPort: 80},
          {address: ip('198.18.0.10'), protocol: 'udp', port: 5300, targetIP: ip('198.19.100.10'), targetPort: 53},
          {address: ip('198.18.2.10'), protocol: 'tcp', port: 8000, targetIP: ip('198.19.100.10'), targetPort: 80},
        ],
      },
    ],
    egress: [],
  }
}

const answered = (r: EchoResult) => (r.ok ? `pod=${r.fields.pod}` : r.error)

describe('nftables backend with real traffic (namespace lab, root)', function () {
  this.timeout(120_000)
  let lab: Lab | undefined

  before(async function () {
    requireLab(this)
    lab = await createLab({hostRpFilter: 0})
    await applyNftables(lab.hostRunner, renderNftables(model()))
  })

  after(async () => {
    await lab?.destroy()
  })

  it('DNATs allowed TCP and UDP with port translation to the Service', async () => {
    expect(answered(await lab!.tcpRequest('client1', '198.18.1.2', '198.18.0.10', 8000))).to.match(/^pod=198\.19\.200\.1[12]$/)
    expect(answered(await lab!.udpRequest('client1', '198.18.1.2', '198.18.0.10', 5300))).to.match(/^pod=198\.19\.200\.1[12]$/)
  })

  it('drops a source that is not allowed', async () => {
    expect(answered(await lab!.tcpRequest('client1', '198.18.1.3', '198.18.0.10', 8000, {timeoutMs: 1000}))).to.equal('timeout')
  })

  it('routes replies out of the interface the connection came in on', async () => {
    // rtr1 has no route back to client2: only the connmark and table 7002 bring the reply home.
    expect(answered(await lab!.tcpRequest('client2', undefined, '198.18.2.10', 8000))).to.match(/^pod=198\.19\.200\.1[12]$/)
  })

  it('cannot overrule a FORWARD policy of DROP in iptables\' filter table; an accept there restores traffic', async () => {
    const host = (...args: string[]) => lab!.exec('host', 'iptables', args)
    await host('-P', 'FORWARD', 'DROP')
    try {
      // smartnat's forward chain accepts the packet, but every base chain of the hook must accept it.
      expect(answered(await lab!.tcpRequest('client1', '198.18.1.2', '198.18.0.10', 8000, {timeoutMs: 1000}))).to.equal('timeout')
      await host('-I', 'FORWARD', '1', '-m', 'connmark', '!', '--mark', '0x0/0xff00000', '-j', 'ACCEPT')
      expect(answered(await lab!.tcpRequest('client1', '198.18.1.2', '198.18.0.10', 8000))).to.match(/^pod=198\.19\.200\.1[12]$/)
    } finally {
      await host('-P', 'FORWARD', 'ACCEPT')
    }
  })
})
