import {expect} from 'chai'
import {ADMITTED_CONNECTION_MARK} from '../../src/lib/backend/backend.js'
import {deleteStaleNatFlows, listConntrackFlows} from '../../src/lib/host/conntrack.js'
import {DEFAULT_INTERFACES_PATTERN, compileInterfacesPattern, readHostInterfaces} from '../../src/lib/host/interfaces.js'
import {checkIpForwarding, relaxReversePathFilter} from '../../src/lib/host/sysctl.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {
  LAB_DIRECT_PODS,
  LAB_PLAN,
  createLab,
  destroyAllLabs,
  labForSuite,
  listNamespaces,
  requireLab,
  withLab,
  type EchoResult,
} from '../support/lab.js'

const VIP = '198.19.100.10'
const [POD_A, POD_B] = ['198.19.200.11', '198.19.200.12']
const answeredBy = (results: EchoResult[]) => results.map((r) => (r.ok ? r.fields.pod : r.error))

describe('namespace lab (no smartnat)', function () {
  this.timeout(60_000)
  const lab = labForSuite()

  it('builds every namespace under one unique prefix', async () => {
    const mine = (await listNamespaces()).filter((name) => name.startsWith(lab().prefix))
    expect(mine.sort()).to.deep.equal(['client1', 'client2', 'host', 'node', 'rtr1', 'rtr2'].map((n) => `${lab().prefix}${n}`))
    expect(lab().prefix).to.match(new RegExp(`^snl-${process.pid}-\\d+-$`))
  })

  it('gives the host two external interfaces matching the default pattern and a cluster interface that does not', async () => {
    const {stdout} = await lab().hostRunner.run('ip', ['-j', '-4', 'addr', 'show'])
    const byName = Object.fromEntries(
      (JSON.parse(stdout) as {ifname?: string; addr_info?: {local: string}[]}[])
        .filter((link) => link.ifname)
        .map((link) => [link.ifname, (link.addr_info ?? []).map((a) => a.local)]),
    )
    expect(byName).to.deep.equal({
      lo: ['127.0.0.1'],
      eth1: [...LAB_PLAN.host.eth1.addresses],
      eth2: [...LAB_PLAN.host.eth2.addresses],
      cluster0: [LAB_PLAN.host.cluster0.address],
    })
    const {stdout: routes} = await lab().exec('host', 'ip', ['route', 'show', 'default'])
    expect(routes.trim()).to.equal(`default via ${LAB_PLAN.host.eth1.gateway} dev eth1`)
    expect((await lab().exec('host', 'sysctl', ['-n', 'net.ipv4.ip_forward'])).stdout.trim()).to.equal('1')
  })

  it('from the host, TCP to VIP:port reaches the pods round-robin', async () => {
    const results = await lab().requests('tcp', 'host', undefined, VIP, 80, 4)
    expect(answeredBy(results)).to.deep.equal([POD_A, POD_B, POD_A, POD_B])
    for (const r of results) expect(r.ok && r.fields).to.include({proto: 'tcp', port: '8080', from: LAB_PLAN.host.cluster0.address})
  })

  it('from the host, UDP to VIP:port reaches the pods round-robin', async () => {
    const results = await lab().requests('udp', 'host', undefined, VIP, 53, 2)
    expect(new Set(answeredBy(results))).to.deep.equal(new Set([POD_A, POD_B]))
    for (const r of results) expect(r.ok && r.fields).to.include({proto: 'udp', port: '5353'})
  })

  it('a VIP port the node does not translate is unreachable, quickly', async () => {
    const result = await lab().tcpRequest('host', undefined, VIP, 81, {timeoutMs: 1500})
    expect(result).to.include({ok: false, error: 'unreachable'})
  })

  it('a client reaches a listener on the host eth1 address, from each of its source addresses', async () => {
    const server = await lab().startEcho('host', {id: 'host=eth1', listen: [{protocol: 'tcp', ip: '198.18.0.10', port: 7000}]})
    try {
      for (const source of LAB_PLAN.client1.addresses) {
        const result = await lab().tcpRequest('client1', source, '198.18.0.10', 7000)
        expect(result.ok && result.fields).to.deep.equal({host: 'eth1', proto: 'tcp', port: '7000', from: source})
      }
      const refused = await lab().tcpRequest('client1', undefined, '198.18.0.11', 7001)
      expect(refused).to.include({ok: false, error: 'refused'})
    } finally {
      await server.stop()
    }
  })

  it('replies to client2 are lost while the host answers by its main default route, and arrive when routed by eth2', async () => {
    const server = await lab().startEcho('host', {id: 'host=eth2', listen: [{protocol: 'udp', ip: '198.18.2.10', port: 7053}]})
    try {
      const lost = await lab().udpRequest('client2', undefined, '198.18.2.10', 7053, {timeoutMs: 800})
      expect(lost).to.include({ok: false, error: 'timeout'})
      await lab().exec('host', 'ip', ['route', 'add', '198.18.3.0/24', 'via', LAB_PLAN.host.eth2.gateway])
      const answered = await lab().udpRequest('client2', undefined, '198.18.2.10', 7053)
      expect(answered.ok && answered.fields.from).to.equal('198.18.3.2')
    } finally {
      await lab().exec('host', 'ip', ['route', 'del', '198.18.3.0/24'], {okExitCodes: [2]})
      await server.stop()
    }
  })

  it('scales endpoints at runtime: a removed pod stops answering, an added one joins', async () => {
    await lab().removePod(POD_A)
    expect(answeredBy(await lab().requests('tcp', 'host', undefined, VIP, 80, 2))).to.deep.equal([POD_B, POD_B])
    await lab().addPod({ip: '198.19.200.13', tcp: [8080]})
    await lab().setService({vip: VIP, protocol: 'tcp', port: 80, targetPort: 8080, pods: [POD_B, '198.19.200.13']})
    expect(answeredBy(await lab().requests('tcp', 'host', undefined, VIP, 80, 2))).to.deep.equal([POD_B, '198.19.200.13'])
    await lab().removeService(VIP, 'tcp', 80)
    expect(await lab().tcpRequest('host', undefined, VIP, 80, {timeoutMs: 1500})).to.include({ok: false, error: 'unreachable'})
  })
})

describe('namespace lab without kube-proxy (no smartnat)', function () {
  this.timeout(60_000)
  const lab = labForSuite({kubeProxy: false, pods: [...LAB_DIRECT_PODS, {ip: '198.19.200.14', tcp: [8081]}]})
  const POD_C = '198.19.200.13'

  it('routes the host to each pod on its own ports, and translates nothing on the node', async () => {
    for (const pod of [POD_A, POD_B, POD_C]) {
      const tcp = await lab().tcpRequest('host', undefined, pod, 8080)
      expect(tcp.ok && tcp.fields).to.deep.equal({pod, proto: 'tcp', port: '8080', from: LAB_PLAN.host.cluster0.address})
      expect(answeredBy([await lab().udpRequest('host', undefined, pod, 5353)])).to.deep.equal([pod])
    }
    expect(answeredBy([await lab().tcpRequest('host', undefined, '198.19.200.14', 8081)])).to.deep.equal(['198.19.200.14'])
    expect((await lab().exec('node', 'iptables-save', ['-t', 'nat'])).stdout).to.not.include('DNAT')
    expect(await lab().tcpRequest('host', undefined, VIP, 80, {timeoutMs: 1500}), 'no route to the Service VIPs').to.include({ok: false, error: 'unreachable'})
    await expectRejection(lab().setService({vip: VIP, protocol: 'tcp', port: 80, targetPort: 8080, pods: [POD_A]}), /has no kube-proxy/)
  })

  it('a pod address the node no longer holds is unreachable, quickly', async () => {
    await lab().removePod(POD_C)
    expect(await lab().tcpRequest('host', undefined, POD_C, 8080, {timeoutMs: 1500})).to.include({ok: false, error: 'unreachable'})
  })

  it('holds a TCP connection and a UDP flow open and asks on them again', async () => {
    const source = {ip: LAB_PLAN.host.cluster0.address, port: 43_001}
    const tcp = await lab().holdConnection('host', {protocol: 'tcp', source, target: {ip: POD_A, port: 8080}})
    const udp = await lab().holdConnection('host', {protocol: 'udp', source, target: {ip: POD_B, port: 5353}})
    try {
      expect(answeredBy([await tcp.ask(), await tcp.ask(), await udp.ask(), await udp.ask()])).to.deep.equal([POD_A, POD_A, POD_B, POD_B])
      // The server side going away ends the held TCP connection: every later ask says so.
      await lab().removePod(POD_A)
      expect((await tcp.ask()).ok).to.equal(false)
    } finally {
      await Promise.all([tcp.close(), udp.close()])
    }
  })
})

async function expectRejection(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const error = await promise.then(() => undefined, (e: unknown) => e as Error)
  expect(error?.message).to.match(message)
}

describe('host module inside the lab host namespace', function () {
  this.timeout(60_000)
  const lab = labForSuite()

  it('reads eth1 and eth2 with every address, primary first, and not cluster0', async () => {
    const info = await readHostInterfaces(lab().hostRunner, compileInterfacesPattern(DEFAULT_INTERFACES_PATTERN))
    expect(info.interfaces.map((i) => [i.name, i.addresses.map((a) => `${a.address}/${a.prefixLength}`)])).to.deep.equal([
      ['eth1', LAB_PLAN.host.eth1.addresses.map((a) => `${a}/24`)],
      ['eth2', LAB_PLAN.host.eth2.addresses.map((a) => `${a}/24`)],
    ])
  })

  it('checks forwarding and relaxes strict rp_filter on the external interfaces only', async () => {
    await checkIpForwarding(lab().hostRunner)
    const changes = await relaxReversePathFilter(lab().hostRunner, ['eth1', 'eth2'])
    expect(changes).to.deep.equal([
      {interface: 'eth1', from: 1, to: 2},
      {interface: 'eth2', from: 1, to: 2},
    ])
    expect(await relaxReversePathFilter(lab().hostRunner, ['eth1', 'eth2'])).to.deep.equal([])
  })

  it('deletes the conntrack entries of an external endpoint DNATed to a former target that is no longer current, and no other DNAT’s', async () => {
    const address = '198.18.0.10' as Ipv4
    await lab().exec('host', 'iptables', ['-t', 'nat', '-A', 'PREROUTING', '-d', address, '-p', 'udp', '--dport', '53', '-j', 'DNAT', '--to-destination', `${VIP}:53`])
    const answer = await lab().udpRequest('client1', '198.18.1.3', address, 53)
    expect(answer.ok && answer.fields.from).to.equal('198.18.1.3')
    const flows = await listConntrackFlows(lab().hostRunner, {protocol: 'udp', origDst: address})
    expect(flows.map((f) => [f.original.src, f.original.dport, f.reply.src, f.reply.sport])).to.deep.equal([['198.18.1.3', 53, VIP, 53]])

    const current = {address, protocol: 'udp' as const, port: 53, target: {ip: VIP as Ipv4, port: 53}, formerTargets: []}
    expect(await deleteStaleNatFlows(lab().hostRunner, [current], ADMITTED_CONNECTION_MARK)).to.equal(0)
    expect(await listConntrackFlows(lab().hostRunner, {protocol: 'udp', origDst: address})).to.have.length(1)
    // Moved elsewhere: an entry neither translated to a former target nor marked as admitted is another DNAT's.
    const moved = {...current, target: {ip: '198.19.100.20' as Ipv4, port: 53}}
    expect(await deleteStaleNatFlows(lab().hostRunner, [moved], ADMITTED_CONNECTION_MARK)).to.equal(0)
    expect(await listConntrackFlows(lab().hostRunner, {protocol: 'udp', origDst: address})).to.have.length(1)
    expect(await deleteStaleNatFlows(lab().hostRunner, [{...moved, formerTargets: [{ip: VIP as Ipv4, port: 53}]}], ADMITTED_CONNECTION_MARK)).to.equal(1)
    expect(await listConntrackFlows(lab().hostRunner, {protocol: 'udp', origDst: address})).to.deep.equal([])
  })
})

describe('namespace lab teardown', function () {
  this.timeout(60_000)

  before(function () {
    requireLab(this)
  })

  it('leaves no namespace behind, even when the body fails', async () => {
    let prefix = ''
    const error = await withLab({pods: [], services: []}, async (lab) => {
      prefix = lab.prefix
      expect((await listNamespaces()).filter((n) => n.startsWith(prefix))).to.have.length(6)
      throw new Error('body failed')
    }).catch((e: Error) => e)
    expect((error as Error).message).to.equal('body failed')
    expect((await listNamespaces()).filter((n) => n.startsWith(prefix))).to.deep.equal([])
  })

  it('destroyAllLabs removes leftovers of a prefix and their processes', async () => {
    const lab = await createLab({pods: [{ip: POD_A, tcp: [8080]}], services: []})
    const {stdout} = await lab.exec('node', 'ip', ['netns', 'identify'])
    expect(stdout.trim()).to.equal(lab.ns('node'))
    const removed = await destroyAllLabs(lab.prefix)
    expect(removed.sort()).to.have.length(6)
    expect((await listNamespaces()).filter((n) => n.startsWith(lab.prefix))).to.deep.equal([])
    await lab.destroy()
  })

  it('refuses to remove namespaces that are not labs', async () => {
    const error = await destroyAllLabs('snm-').catch((e: Error) => e)
    expect((error as Error).message).to.equal('destroyAllLabs: prefix must start with snl-')
  })
})
