/**
 * `smartnat sync --from-file DIR --netns HOST --backend NAME` end to end, for each backend: the
 * real CLI programs the lab's host, and real TCP and UDP packets from the lab's clients show what it did.
 */
import {expect} from 'chai'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS, cleanHost} from '../support/backends.js'
import {syncArgs, type SyncJson} from '../support/e2e.js'
import {LAB_DEFAULT_PODS, LAB_PLAN, type EchoResult, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture, type ServiceFixture} from '../support/mappings.js'
import {smartnat, smartnatJson} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const OTHER_VIP = '198.19.100.20'
const [POD_A, POD_B, POD_C] = ['198.19.200.11', '198.19.200.12', '198.19.200.13']
const [EXT_A, EXT_B, EXT_C] = LAB_PLAN.host.eth1.addresses
const EXT_2 = LAB_PLAN.host.eth2.addresses[0]
const [CLIENT, STRANGER] = LAB_PLAN.client1.addresses
/** Expected silence is waited for this long; answers in the lab take a few milliseconds. */
const SILENCE = {timeoutMs: 800}
/** The node balances round-robin across tests, so a single request may land on either pod of `web`. */
const WEB_PODS = [POD_A, POD_B]

const answers = (results: EchoResult[]) => results.map((r) => (r.ok ? r.line : r.error))
const pods = (results: EchoResult[]) => results.map((r) => (r.ok ? r.fields.pod : r.error))

for (const backend of BACKENDS) describe(`smartnat sync in the namespace lab (root, ${backend.name})`, function () {
  this.timeout(60_000)
  let lab: Lab
  let dir: ManifestDir
  let web: ServiceFixture
  let other: ServiceFixture

  const sync = (...flags: string[]) => smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir, ...flags))
  const apply = async (mappings: MappingFixture[], ...flags: string[]) => {
    await dir.write({services: [web, other], mappings})
    return sync(...flags)
  }

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend, {pods: [...LAB_DEFAULT_PODS, {ip: POD_C, tcp: [8080], udp: [5353]}]}))
    await lab.setService({vip: OTHER_VIP, protocol: 'tcp', port: 80, targetPort: 8080, pods: [POD_C]})
    await lab.setService({vip: OTHER_VIP, protocol: 'udp', port: 53, targetPort: 5353, pods: [POD_C]})
    web = serviceFromLab('web', lab.services(), VIP)
    other = serviceFromLab('other', lab.services(), OTHER_VIP)
  })

  // Each test starts from a host without smartnat's rules and without remembered connections.
  afterEach(async function () {
    if (lab) await cleanHost(lab, backend)
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  it('TCP and UDP reach the Service through address:port, with the port translated to the servicePort', async () => {
    const result = await apply([
      {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]},
    ])
    expect(result).to.include({configured: 1, invalid: 0, changed: true})
    expect(answers(await lab.requests('tcp', 'client1', CLIENT, EXT_A, 8080, 2))).to.have.members([
      `pod=${POD_A} proto=tcp port=8080 from=${LAB_PLAN.host.cluster0.address}`,
      `pod=${POD_B} proto=tcp port=8080 from=${LAB_PLAN.host.cluster0.address}`,
    ])
    expect(answers(await lab.requests('udp', 'client1', CLIENT, EXT_A, 5300, 2))).to.have.members([
      `pod=${POD_A} proto=udp port=5353 from=${LAB_PLAN.host.cluster0.address}`,
      `pod=${POD_B} proto=udp port=5353 from=${LAB_PLAN.host.cluster0.address}`,
    ])
    // Only the mapped ports are translated: the Service's own port on the external address is the host's, which does not listen.
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 80, SILENCE)])).to.deep.equal(['refused'])
  })

  it('two Mappings share a port on two addresses and reach different Services', async () => {
    await apply([
      {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]},
      {name: 'other', addresses: [EXT_B], serviceName: 'other', ports: [{port: 8080, servicePort: 80}]},
    ])
    expect(pods(await lab.requests('tcp', 'client1', CLIENT, EXT_A, 8080, 2))).to.have.members([POD_A, POD_B])
    expect(pods(await lab.requests('tcp', 'client1', CLIENT, EXT_B, 8080, 2))).to.deep.equal([POD_C, POD_C])
  })

  it('an allowed source connects; any other source gets no answer, although the host listens on that address:port', async () => {
    await lab.startEcho('host', {id: 'host-listener', listen: [{protocol: 'tcp', ip: EXT_C, port: 9000}, {protocol: 'udp', ip: EXT_C, port: 9000}]})
    // Without the Mapping the host's own listener answers: a silence later is smartnat's doing.
    expect(answers([await lab.tcpRequest('client1', STRANGER, EXT_C, 9000)])).to.deep.equal([`host-listener proto=tcp port=9000 from=${STRANGER}`])

    await apply([
      {name: 'web', addresses: [EXT_C], allowedSources: [`${CLIENT}/32`], serviceName: 'web', ports: [{port: 9000, servicePort: 80}, {port: 9000, protocol: 'udp', servicePort: 53}]},
    ])
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_C, 9000)])[0]).to.be.oneOf(WEB_PODS)
    expect(pods([await lab.udpRequest('client1', CLIENT, EXT_C, 9000)])[0]).to.be.oneOf(WEB_PODS)
    expect(pods([await lab.tcpRequest('client1', STRANGER, EXT_C, 9000, SILENCE)])).to.deep.equal(['timeout'])
    expect(pods([await lab.udpRequest('client1', STRANGER, EXT_C, 9000, SILENCE)])).to.deep.equal(['timeout'])
  })

  it('replies leave by the interface the request came in on, even though the main default route points elsewhere', async () => {
    await apply([{name: 'web', addresses: [EXT_A, EXT_2], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}])
    expect(pods([await lab.tcpRequest('client2', undefined, EXT_2, 8080)])[0]).to.be.oneOf(WEB_PODS)
    expect(pods([await lab.tcpRequest('client1', undefined, EXT_A, 8080)])[0]).to.be.oneOf(WEB_PODS)

    // Without eth2's fwmark rule the reply follows the main default route out of eth1, where no router knows client2.
    const rule = (await lab.exec('host', 'ip', ['-4', 'rule', 'show'])).stdout
    expect(rule).to.match(/^7002:\s+from all fwmark 0x200000\/0xff00000 lookup 7002/m)
    await lab.exec('host', 'ip', ['rule', 'del', 'priority', '7002'])
    expect(pods([await lab.tcpRequest('client2', undefined, EXT_2, 8080, SILENCE)])).to.deep.equal(['timeout'])

    const repaired = await sync()
    expect(repaired.changed).to.equal(true)
    expect(repaired.written.routes).to.equal(1)
    expect(pods([await lab.tcpRequest('client2', undefined, EXT_2, 8080)])[0]).to.be.oneOf(WEB_PODS)
  })

  it('masquerades traffic to the cluster by default; with --no-masquerade the pods see the client', async () => {
    const mapping: MappingFixture = {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]}
    await apply([mapping])
    const masqueraded = [await lab.tcpRequest('client1', CLIENT, EXT_A, 8080), await lab.udpRequest('client1', CLIENT, EXT_A, 5300)]
    expect(masqueraded.map((r) => r.ok && r.fields.from)).to.deep.equal([LAB_PLAN.host.cluster0.address, LAB_PLAN.host.cluster0.address])

    const plain = await apply([mapping], '--no-masquerade')
    expect(plain.changed).to.equal(true)
    await lab.exec('host', 'conntrack', ['-F'])
    const direct = [await lab.tcpRequest('client1', CLIENT, EXT_A, 8080), await lab.udpRequest('client1', CLIENT, EXT_A, 5300)]
    expect(direct.map((r) => r.ok && r.fields.from)).to.deep.equal([CLIENT, CLIENT])
  })

  it('with --snat, a connection a pod starts leaves with its Mapping’s address, out of that address’s interface', async () => {
    const client2 = LAB_PLAN.client2.addresses[0]
    await lab.startEcho('client2', {id: 'outside', listen: [{protocol: 'tcp', ip: client2, port: 7000}, {protocol: 'udp', ip: client2, port: 7000}]})
    const mapping: MappingFixture = {name: 'web', addresses: [EXT_2], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}

    // Without --snat the pod's connection follows the main table out of eth1 with its own address, and rtr1 knows no way to client2.
    await apply([mapping])
    expect(answers([await lab.tcpRequest('node', POD_A, client2, 7000, SILENCE)])).to.deep.equal(['timeout'])

    await apply([mapping], '--snat')
    expect(answers([await lab.tcpRequest('node', POD_A, client2, 7000)])).to.deep.equal([`outside proto=tcp port=7000 from=${EXT_2}`])
    expect(answers([await lab.udpRequest('node', POD_B, client2, 7000)])).to.deep.equal([`outside proto=udp port=7000 from=${EXT_2}`])
    // A pod of no Mapping is left alone.
    expect(answers([await lab.tcpRequest('node', POD_C, client2, 7000, SILENCE)])).to.deep.equal(['timeout'])
  })

  it('a second sync finds the kernel up to date and writes nothing', async () => {
    const mappings: MappingFixture[] = [
      {name: 'web', addresses: [EXT_A, EXT_2], allowedSources: ['198.18.1.0/24', '198.18.3.2'], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]},
      {name: 'other', addresses: [EXT_B], serviceName: 'other', ports: [{port: 8080, servicePort: 80}]},
    ]
    const first = await apply(mappings, '--snat')
    expect(first.changed).to.equal(true)
    const before = await backend.dump(lab)
    // Traffic moves counters, which is all that may differ.
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)])[0]).to.be.oneOf(WEB_PODS)

    const second = await sync('--snat')
    expect(second).to.deep.include({changed: false, written: {sets: 0, chains: 0, rules: 0, routes: 0}, conntrackDeleted: 0})
    expect(await backend.dump(lab)).to.equal(before)
  })

  it('repairs drift: a deleted DNAT rule and an emptied allow-list come back with the next sync', async () => {
    await apply([{name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}])
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)])[0]).to.be.oneOf(WEB_PODS)

    await backend.breakDnat(lab, {address: EXT_A, protocol: 'tcp', port: 8080, target: `${VIP}:80`, mapping: 'default/web'})
    // Not DNATed, the connection is still to a mapped endpoint, which the input hook drops.
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 8080, SILENCE)])).to.deep.equal(['timeout'])
    const rule = await sync()
    expect(rule).to.deep.include({changed: true, written: backend.dnatRepairWrites})
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)])[0]).to.be.oneOf(WEB_PODS)

    await backend.emptyAllowList(lab)
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 8080, SILENCE)])).to.deep.equal(['timeout'])
    const set = await sync()
    expect(set).to.deep.include({changed: true, written: {sets: 1, chains: 0, rules: 0, routes: 0}})
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)])[0]).to.be.oneOf(WEB_PODS)
  })

  it('reports invalid Mappings, exits 0 and programs the valid ones; --strict exits non-zero', async () => {
    await apply([
      {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}], creationTimestamp: '2025-01-01T00:00:00Z'},
      {name: 'late', addresses: [EXT_A], serviceName: 'other', ports: [{port: 8080, servicePort: 80}], creationTimestamp: '2025-06-01T00:00:00Z'},
      {name: 'bad-source', addresses: [EXT_B], allowedSources: ['10.0.0.0/33'], serviceName: 'other', ports: [{port: 8080, servicePort: 80}]},
      {name: 'no-service', addresses: [EXT_B], serviceName: 'missing', ports: [{port: 8081}]},
    ])
    const run = await smartnat(syncArgs(backend.name, lab, dir, '--json'))
    expect(run.code, run.stderr).to.equal(0)
    const result = JSON.parse(run.stdout) as SyncJson
    expect(result).to.include({configured: 1, invalid: 3})
    const reasons = Object.fromEntries(result.mappings.map((m) => [m.name, m.reason]))
    expect(reasons.web).to.equal(null)
    expect(reasons.late).to.match(/default\/web/)
    expect(reasons['bad-source']).to.match(/allowedSources\[0\] "10\.0\.0\.0\/33"/)
    expect(reasons['no-service']).to.equal('service "missing" not found in namespace "default"')
    expect(pods(await lab.requests('tcp', 'client1', CLIENT, EXT_A, 8080, 2))).to.have.members([POD_A, POD_B])
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_B, 8080, SILENCE)])).to.deep.equal(['refused'])

    const strict = await smartnat(syncArgs(backend.name, lab, dir, '--strict'))
    expect(strict.code).to.equal(3)
    expect(strict.stderr).to.include('3 Mapping(s) invalid')
    expect(strict.stdout).to.include('kernel already up to date')
    expect(pods([await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)])[0]).to.be.oneOf(WEB_PODS)
  })
})
