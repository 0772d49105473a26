/**
 * The kernel side of mode direct's conntrack cleanup: the listing by connection mark and the deletion
 * of a mapped endpoint's entries answered by an address its Service no longer lists.
 *
 * A Service whose ClusterIP is the pod's own address makes smartnat's DNAT send the client straight
 * to the pod, so the host's entry is the one a mode-direct DNAT leaves: original destination the
 * external address:port, reply source the pod, the eth1 bits in the connection mark. Next to it, the
 * host itself talks to the same pod; that entry is never smartnat's to delete.
 */
import {expect} from 'chai'

import {deleteFlowsFromUnlisted, listConntrackFlows} from '../../src/lib/host/conntrack.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {EGRESS_MARK, INTERFACE_MASK, interfaceMark} from '../../src/lib/net/marks.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS} from '../support/backends.js'
import {podOf, syncArgs, udpFlow} from '../support/e2e.js'
import {LAB_PLAN, type Lab} from '../support/lab.js'
import {ManifestDir, type MappingFixture} from '../support/mappings.js'
import {smartnat} from '../support/smartnat-cli.js'

const POD = '198.19.200.12' as Ipv4
const EXT = LAB_PLAN.host.eth1.addresses[0] as Ipv4
const CLIENT = LAB_PLAN.client1.addresses[0]
const HOST_CLUSTER_SIDE = LAB_PLAN.host.cluster0.address
const PORT = 5300
const PINNED: MappingFixture = {name: 'pinned', addresses: [EXT], serviceName: 'pinned', ports: [{port: PORT, protocol: 'udp', servicePort: 5353}]}
/** What smartnat admitted on eth1, the lab's first external interface. */
const ETH1 = {value: interfaceMark(1), mask: INTERFACE_MASK | EGRESS_MARK}

const backend = BACKENDS[0]!

describe(`conntrack cleanup of mode direct in the kernel (root, ${backend.name})`, function () {
  this.timeout(60_000)
  let lab: Lab | undefined
  let dir: ManifestDir | undefined
  let sourcePort = 42_000

  /** The host's entries answered by the pod, as `original destination:port` each. */
  const entriesOfPod = async () => (await listConntrackFlows(lab!.hostRunner, {replySrc: POD})).map((f) => `${f.original.dst}:${f.original.dport}`).sort()

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    await dir.write({mappings: [PINNED], services: [{name: 'pinned', clusterIP: POD, ports: [{protocol: 'udp', port: 5353, targetPort: 5353}], pods: [POD]}]})
    const {code, stderr} = await smartnat(syncArgs(backend.name, lab, dir))
    expect(code, stderr).to.equal(0)
  })

  beforeEach(async () => {
    sourcePort++
    expect((await udpFlow(lab!, 'client1', {ip: CLIENT, port: sourcePort}, {ip: EXT, port: PORT}, 1)).map(podOf)).to.deep.equal([POD])
    expect((await udpFlow(lab!, 'host', {ip: HOST_CLUSTER_SIDE, port: sourcePort + 1000}, {ip: POD, port: 5353}, 1)).map(podOf)).to.deep.equal([POD])
    expect(await entriesOfPod()).to.deep.equal([`${EXT}:${PORT}`, `${POD}:5353`])
  })

  afterEach(async () => {
    if (lab) await lab.exec('host', 'conntrack', ['-F'])
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  it('keeps the connection of a pod the Service still lists', async () => {
    expect(await deleteFlowsFromUnlisted(lab!.hostRunner, [{address: EXT, protocol: 'udp', port: PORT, keep: new Set([POD])}], [ETH1])).to.equal(0)
    expect(await entriesOfPod()).to.deep.equal([`${EXT}:${PORT}`, `${POD}:5353`])
  })

  it('deletes the connection of a pod no slice lists, and leaves the host’s own connection to it', async () => {
    expect(await deleteFlowsFromUnlisted(lab!.hostRunner, [{address: EXT, protocol: 'udp', port: PORT, keep: new Set()}], [ETH1])).to.equal(1)
    expect(await entriesOfPod()).to.deep.equal([`${POD}:5353`])
  })
})
