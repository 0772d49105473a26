/**
 * Connections that outlive their target. A UDP client that keeps its socket keeps its conntrack
 * entry, and every packet follows that entry instead of the NAT rules; a sync that moves or removes
 * an endpoint must delete those entries so that the next packet is translated afresh.
 *
 * In `service` mode the host translates to the Service VIP, and the node picks the pod. So the host
 * entries to delete are those whose VIP:servicePort is no longer the Mapping's target; a pod that
 * goes away is the node's business (kube-proxy deletes its entries there), and the host's entry,
 * still pointing at the unchanged VIP, must stay: the flow moves to another pod on its own.
 */
import {expect} from 'chai'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS, cleanHost} from '../support/backends.js'
import {podOf, syncArgs, udpFlow, type SyncJson} from '../support/e2e.js'
import {LAB_DEFAULT_PODS, LAB_PLAN, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture} from '../support/mappings.js'
import {smartnatJson} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const OTHER_VIP = '198.19.100.20'
const [POD_A, POD_B, POD_C] = ['198.19.200.11', '198.19.200.12', '198.19.200.13']
const EXT = LAB_PLAN.host.eth1.addresses[0]
const CLIENT = LAB_PLAN.client1.addresses[0]
const OTHER_CLIENT = LAB_PLAN.client1.addresses[1]
const PORT = 5300

for (const backend of BACKENDS) describe(`smartnat sync and established connections (root, ${backend.name})`, function () {
  this.timeout(60_000)
  let lab: Lab
  let dir: ManifestDir
  let sourcePort = 40_000

  const dns = (serviceName: string, extraPorts: MappingFixture['ports'] = []): MappingFixture => ({
    name: 'dns',
    addresses: [EXT],
    serviceName,
    ports: [{port: PORT, protocol: 'udp', servicePort: 53}, ...extraPorts],
  })
  const apply = async (mappings: MappingFixture[]) => {
    await dir.write({services: [serviceFromLab('web', lab.services(), VIP), serviceFromLab('other', lab.services(), OTHER_VIP)], mappings})
    return smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir))
  }
  /** The host's conntrack entries of one client socket to the mapped port: both tuples as `conntrack -L` prints them, without timers and flags. */
  const flowsOf = async (port: number) => {
    const {stdout} = await lab.exec('host', 'conntrack', ['-L', '-p', 'udp', '--orig-dst', EXT, '--orig-port-dst', String(PORT)], {okExitCodes: [1]})
    return stdout
      .split('\n')
      .filter((line) => line.includes(`sport=${port} dport=${PORT}`))
      .map((line) => line.split(/\s+/).filter((word) => /^(src|dst|sport|dport)=/.test(word)).join(' '))
  }

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend, {pods: [...LAB_DEFAULT_PODS, {ip: POD_C, udp: [5353]}]}))
    await lab.setService({vip: OTHER_VIP, protocol: 'udp', port: 53, targetPort: 5353, pods: [POD_C]})
  })

  beforeEach(() => void sourcePort++)

  afterEach(async function () {
    if (lab) await cleanHost(lab, backend)
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  it('a new target drops the flows to the old one, and the next packet of the same socket reaches the new target', async () => {
    await apply([dns('web')])
    const source = {ip: CLIENT, port: sourcePort}
    const first = (await udpFlow(lab, 'client1', source, {ip: EXT, port: PORT}, 3)).map(podOf)
    expect(new Set(first).size, 'one socket, one conntrack entry, one pod').to.equal(1)
    expect(first[0]).to.be.oneOf([POD_A, POD_B])
    const [entry] = await flowsOf(sourcePort)
    expect(entry).to.include(`src=${VIP} dst=${LAB_PLAN.host.cluster0.address} sport=53`)

    // A change that leaves this endpoint's target alone keeps the flow.
    const unrelated = await apply([dns('web', [{port: 8080, servicePort: 80}])])
    expect(unrelated).to.include({changed: true, conntrackDeleted: 0})
    expect(await flowsOf(sourcePort)).to.deep.equal([entry])
    expect((await udpFlow(lab, 'client1', source, {ip: EXT, port: PORT}, 1)).map(podOf)).to.deep.equal([first[0]])

    const moved = await apply([dns('other')])
    expect(moved).to.include({changed: true, conntrackDeleted: 1})
    expect(await flowsOf(sourcePort)).to.deep.equal([])
    expect((await udpFlow(lab, 'client1', source, {ip: EXT, port: PORT}, 2)).map(podOf)).to.deep.equal([POD_C, POD_C])
    const [renewed] = await flowsOf(sourcePort)
    expect(renewed).to.include(`src=${OTHER_VIP} dst=${LAB_PLAN.host.cluster0.address} sport=53`)
  })

  it('a deleted Mapping drops its flows, and the next packet is not translated any more', async () => {
    await apply([dns('web')])
    const source = {ip: CLIENT, port: sourcePort}
    expect((await udpFlow(lab, 'client1', source, {ip: EXT, port: PORT}, 2)).map(podOf)).to.satisfy((p: string[]) => p.every((pod) => [POD_A, POD_B].includes(pod)))
    expect(await flowsOf(sourcePort)).to.have.length(1)

    const removed = await apply([])
    expect(removed).to.include({changed: true, conntrackDeleted: 1})
    expect(await flowsOf(sourcePort)).to.deep.equal([])
    expect(await udpFlow(lab, 'client1', source, {ip: EXT, port: PORT}, 1, 500)).to.deep.equal(['timeout'])
    const entries = await flowsOf(sourcePort)
    expect(entries.every((line) => !line.includes(`src=${VIP}`)), entries.join('\n')).to.equal(true)
  })

  it('a deleted Mapping drops the flows its DNAT made, not those another DNAT made for the same address and port', async () => {
    // Another tool's DNAT for the same endpoint, for a source smartnat does not admit (its jump comes first).
    const foreign = ['-t', 'nat', '-A', 'PREROUTING', '-s', OTHER_CLIENT, '-d', EXT, '-p', 'udp', '--dport', String(PORT), '-j', 'DNAT', '--to-destination', `${OTHER_VIP}:53`]
    await lab.exec('host', 'iptables', foreign)
    try {
      await apply([{...dns('web'), allowedSources: [`${CLIENT}/32`]}])
      const ours = {ip: CLIENT, port: sourcePort}
      const theirs = {ip: OTHER_CLIENT, port: sourcePort + 1000}
      expect((await udpFlow(lab, 'client1', ours, {ip: EXT, port: PORT}, 1)).map(podOf)[0]).to.be.oneOf([POD_A, POD_B])
      expect((await udpFlow(lab, 'client1', theirs, {ip: EXT, port: PORT}, 1)).map(podOf)).to.deep.equal([POD_C])

      const removed = await apply([])
      expect(removed).to.include({changed: true, conntrackDeleted: 1})
      expect(await flowsOf(ours.port)).to.deep.equal([])
      expect(await flowsOf(theirs.port)).to.have.length(1)
      expect((await udpFlow(lab, 'client1', theirs, {ip: EXT, port: PORT}, 1)).map(podOf)).to.deep.equal([POD_C])
    } finally {
      await lab.exec('host', 'iptables', foreign.map((word) => (word === '-A' ? '-D' : word)))
    }
  })

  it('a pod that goes away leaves the host’s entry to the unchanged VIP, and the flow moves to the remaining pod', async () => {
    await apply([dns('web')])
    const source = {ip: CLIENT, port: sourcePort}
    const [gone] = (await udpFlow(lab, 'client1', source, {ip: EXT, port: PORT}, 2)).map(podOf)
    expect(gone).to.be.oneOf([POD_A, POD_B])
    const remaining = gone === POD_A ? POD_B : POD_A
    const [entry] = await flowsOf(sourcePort)

    // The node drops the pod and its own entries, as kube-proxy would; the EndpointSlice loses it.
    await lab.removePod(gone!)
    const synced = await apply([dns('web')])
    expect(synced.conntrackDeleted).to.equal(0)
    expect(synced.mappings[0]!.configuredAddresses[EXT]!.podIPs).to.deep.equal([remaining])
    expect(await flowsOf(sourcePort)).to.deep.equal([entry])
    expect((await udpFlow(lab, 'client1', source, {ip: EXT, port: PORT}, 2)).map(podOf)).to.deep.equal([remaining, remaining])
  })
})
