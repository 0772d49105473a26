/**
 * Mode direct through the iptables backend with real traffic in the namespace lab, applied straight
 * from a NatModel: connections spread over the pods with nothing DNATing on the node, affinity keeps
 * a client on one pod, and an endpoint without pods refuses at once, also to a client that only the
 * reply table of its interface reaches.
 */
import {expect} from 'chai'
import {applyIptables} from '../../src/lib/backend/iptables/apply.js'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import type {NatModel} from '../../src/lib/plan/model.js'
import {LAB_PLAN, createLab, requireLab, type EchoResult, type Lab} from '../support/lab.js'
import {directMapping, group} from '../unit/iptables-direct-fixture.js'
import {cidr, ip} from '../unit/nat-model-fixture.js'

const [POD_A, POD_B] = ['198.19.200.11', '198.19.200.12']
const answeredBy = (results: EchoResult[]) => results.map((r) => (r.ok ? r.fields.pod : r.error))

/** The lab host's two external interfaces; eth2's clients are reached only through its reply table. */
function labModel(): NatModel {
  const {eth1, eth2} = LAB_PLAN.host
  return {
    masquerade: true,
    egress: [],
    interfaces: [
      {name: 'eth1', index: 1, table: 7001, subnets: [{cidr: cidr('198.18.0.0/24'), source: ip(eth1.addresses[0])}], gateway: ip(eth1.gateway)},
      {name: 'eth2', index: 2, table: 7002, subnets: [{cidr: cidr('198.18.2.0/24'), source: ip(eth2.addresses[0])}], gateway: ip(eth2.gateway)},
    ],
    mappings: [
      directMapping('default/empty', [['198.18.2.10', 'eth2']], ['0.0.0.0/0'], [
        ['198.18.2.10 tcp/9090', group('default/empty tcp/9090', [])],
        ['198.18.2.10 udp/9090', group('default/empty udp/9090', [])],
      ]),
      directMapping('default/spread', [['198.18.2.10', 'eth2']], ['0.0.0.0/0'], [
        ['198.18.2.10 tcp/80', group('default/spread tcp/80', [`${POD_A}:8080`, `${POD_B}:8080`])],
        ['198.18.2.10 udp/53', group('default/spread udp/53', [`${POD_A}:5353`, `${POD_B}:5353`])],
      ]),
      directMapping('default/sticky', [['198.18.0.11', 'eth1']], ['0.0.0.0/0'], [['198.18.0.11 tcp/80', group('default/sticky tcp/80', [`${POD_A}:8080`, `${POD_B}:8080`], 60)]]),
    ],
  }
}

describe('iptables mode direct with traffic (root, namespace lab)', function () {
  this.timeout(120_000)
  let lab: Lab | undefined

  before(async function () {
    requireLab(this)
    // No Service on the node: nothing there DNATs, the pods are only routed.
    lab = await createLab({services: [], hostRpFilter: 2})
    await applyIptables(lab.hostRunner, renderIptables(labModel()))
  })

  after(async () => {
    await lab?.destroy()
  })

  it('spreads new tcp and udp connections over every pod of the group', async () => {
    const tcp = answeredBy(await lab!.requests('tcp', 'client2', undefined, '198.18.2.10', 80, 40))
    const udp = answeredBy(await lab!.requests('udp', 'client2', undefined, '198.18.2.10', 53, 40))
    for (const [protocol, answers] of [['tcp', tcp], ['udp', udp]] as const) {
      expect(new Set(answers), protocol).to.deep.equal(new Set([POD_A, POD_B]))
    }
  })

  it('keeps a client on one pod with affinity', async () => {
    const answers = answeredBy(await lab!.requests('tcp', 'client1', undefined, '198.18.0.11', 80, 20))
    expect(new Set(answers).size, answers.join(' ')).to.equal(1)
    expect([POD_A, POD_B]).to.include(answers[0])
  })

  it('refuses tcp and udp to an endpoint without pods at once, back through the interface the client came in on', async () => {
    const tcp = await lab!.tcpRequest('client2', undefined, '198.18.2.10', 9090, {timeoutMs: 3000})
    const udp = await lab!.udpRequest('client2', undefined, '198.18.2.10', 9090, {timeoutMs: 3000})
    expect([tcp.ok ? 'answered' : tcp.error, udp.ok ? 'answered' : udp.error]).to.deep.equal(['refused', 'refused'])
  })
})
