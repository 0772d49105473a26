/**
 * `smartnat sync --kubeconfig F --netns HOST` against the test API server: it reads the Mappings,
 * Services and EndpointSlices over HTTP, programs the lab's host, writes each Mapping's status and
 * records Events; a second sync writes nothing anywhere, an invalid Mapping leaves the valid one alone,
 * a pod remembered in the status but gone from the EndpointSlice leaves it, and with the API down the sync
 * fails without touching the kernel.
 */
import {expect} from 'chai'
import {mkdtemp, rm} from 'node:fs/promises'
import {hostname, tmpdir} from 'node:os'
import {join} from 'node:path'
import {listConntrackFlows} from '../../src/lib/host/conntrack.js'
import type {MappingCondition, MappingStatus} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {PatchType, startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {iptablesDump, udpFlow, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, createLab, requireLab, type EchoResult, type Lab} from '../support/lab.js'
import {mappingManifest, serviceFromLab, serviceManifests, type MappingFixture} from '../support/mappings.js'
import {smartnat, smartnatJson} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const WEB_PODS = ['198.19.200.11', '198.19.200.12']
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]
const WEB: MappingFixture = {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]}
const BROKEN: MappingFixture = {name: 'broken', addresses: [EXT_B], serviceName: 'missing', ports: [{port: 8080, servicePort: 80}]}

interface KubeSyncJson extends SyncJson {
  statusesWritten: number
  eventsCreated: number
}

interface StoredMapping {
  metadata: {name: string; resourceVersion: string; generation: number}
  status?: MappingStatus
}

interface StoredEvent {
  type: string
  reason: string
  message: string
  involvedObject: {kind: string; name: string; namespace: string}
  source: {component: string}
}

const podOf = (r: EchoResult) => (r.ok ? r.fields.pod : r.error)
const condition = (status: MappingStatus | undefined, type: string): MappingCondition | undefined => status?.conditions?.find((c) => c.type === type)

describe('smartnat sync against the Kubernetes API, in the namespace lab (root)', function () {
  this.timeout(60_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let dir: string | undefined

  const mapping = (name: string) => server!.api.get(server!.types.mappings, 'default', name) as unknown as StoredMapping
  const events = (name: string) =>
    server!.api.list(server!.types.events, 'default', {}).items.map((e) => e as unknown as StoredEvent).filter((e) => e.involvedObject.name === name)
  const create = (object: Record<string, unknown>) => server!.createAll([object])
  const syncArgs = () => ['sync', '--kubeconfig', join(dir!, 'kubeconfig'), '--netns', lab!.ns('host'), '--lock-file', join(dir!, 'smartnat.lock')]
  const sync = () => smartnatJson<KubeSyncJson>(syncArgs())
  const reach = async (protocol: 'tcp' | 'udp', address: string, port: number) =>
    podOf((await lab!.requests(protocol, 'client1', CLIENT, address, port, 1, {timeoutMs: 800}))[0]!)

  before(async function () {
    requireLab(this)
    lab = await createLab()
    server = await startApiServer({crds: ['crds/mapping.yaml']})
    dir = await mkdtemp(join(tmpdir(), 'smartnat-kube-sync-'))
    await server.writeKubeconfig(join(dir, 'kubeconfig'))
    for (const object of serviceManifests(serviceFromLab('web', lab.services(), VIP))) create(object)
    create(mappingManifest(WEB))
  })

  after(async () => {
    await server?.stop()
    await lab?.destroy()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('programs the host from the API: exit 0, and client1 reaches the pods over TCP and UDP', async () => {
    expect(await reach('tcp', EXT_A, 8080), 'before any sync').to.equal('refused')
    const result = await sync()
    expect(result).to.include({configured: 1, invalid: 0, changed: true, statusesWritten: 1, eventsCreated: 1})
    expect(result.mappings.map(({name, valid, configuredAddresses}) => ({name, valid, configuredAddresses}))).to.deep.equal([
      {name: 'web', valid: true, configuredAddresses: {[EXT_A]: {podIPs: WEB_PODS}}},
    ])
    expect(await reach('tcp', EXT_A, 8080)).to.be.oneOf(WEB_PODS)
    expect(await reach('udp', EXT_A, 5300)).to.be.oneOf(WEB_PODS)
  })

  it('writes the Mapping’s status: valid, the VIP, the address with its pods, Valid and Ready, the generation seen', () => {
    const {metadata, status} = mapping('web')
    expect(status).to.include({invalid: 'no', serviceVIP: VIP, observedGeneration: metadata.generation})
    expect(status!.configuredAddresses).to.deep.equal({[EXT_A]: {host: hostname(), podIPs: WEB_PODS}})
    expect(condition(status, 'Valid')).to.include({status: 'True', reason: 'Valid', observedGeneration: metadata.generation})
    expect(condition(status, 'Ready')).to.include({status: 'True', reason: 'Configured', message: `serving on ${EXT_A}`})
    expect(condition(status, 'Ready')!.lastTransitionTime).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/)
  })

  it('records one Normal "Configured" Event naming the address it serves', () => {
    const recorded = events('web')
    expect(recorded).to.have.length(1)
    expect(recorded[0]).to.include({type: 'Normal', reason: 'Configured'})
    expect(recorded[0]!.message).to.match(new RegExp(` serves ${EXT_A.replaceAll('.', '\\.')}$`))
    expect(recorded[0]!.involvedObject).to.include({kind: 'Mapping', name: 'web', namespace: 'default'})
    expect(recorded[0]!.source.component).to.equal('smartnat')
  })

  it('a second sync writes no status, no Event and nothing to the kernel', async () => {
    const resourceVersion = mapping('web').metadata.resourceVersion
    const kernel = await iptablesDump(lab!)
    const result = await sync()
    expect(result).to.include({configured: 1, changed: false, statusesWritten: 0, eventsCreated: 0})
    expect(result.written).to.deep.equal({sets: 0, chains: 0, rules: 0, routes: 0})
    expect(mapping('web').metadata.resourceVersion).to.equal(resourceVersion)
    expect(events('web')).to.have.length(1)
    expect(await iptablesDump(lab!)).to.equal(kernel)
  })

  it('an invalid Mapping gets its reason, Valid=False and a Warning Event; the valid one keeps working untouched', async () => {
    const webVersion = mapping('web').metadata.resourceVersion
    create(mappingManifest(BROKEN))
    const result = await sync()
    const reason = 'service "missing" not found in namespace "default"'
    expect(result).to.include({configured: 1, invalid: 1, statusesWritten: 1})
    expect(result.mappings.find((m) => m.name === 'broken')).to.include({valid: false, reason})

    const {status} = mapping('broken')
    expect(status!.invalid).to.equal(reason)
    expect(status!.configuredAddresses).to.equal(undefined)
    expect(condition(status, 'Valid')).to.include({status: 'False', reason: 'Invalid', message: reason})
    expect(condition(status, 'Ready')).to.include({status: 'False', reason: 'Invalid'})
    const warnings = events('broken')
    expect(warnings.map((e) => [e.type, e.reason, e.message])).to.deep.equal([['Warning', 'Invalid', reason]])

    expect(mapping('web').metadata.resourceVersion).to.equal(webVersion)
    expect(await reach('tcp', EXT_A, 8080)).to.be.oneOf(WEB_PODS)
    expect(await reach('tcp', EXT_B, 8080), 'nothing is programmed for the invalid Mapping').to.equal('refused')
  })

  it('a pod that left the EndpointSlice leaves the status; the host’s own connections to the pods are not smartnat’s to drop', async () => {
    const [podA, podB] = WEB_PODS as [Ipv4, Ipv4]
    // A flow from the host straight to each pod: its conntrack entry's replies come from that pod.
    await udpFlow(lab!, 'host', {ip: LAB_PLAN.host.cluster0.address, port: 40001}, {ip: podA, port: 5353}, 1)
    await udpFlow(lab!, 'host', {ip: LAB_PLAN.host.cluster0.address, port: 40002}, {ip: podB, port: 5353}, 1)
    const entries = async (pod: Ipv4) => (await listConntrackFlows(lab!.hostRunner, {replySrc: pod})).length
    expect([await entries(podA), await entries(podB)]).to.deep.equal([1, 1])

    const slices = server!.types.endpointSlices
    server!.api.patch(slices, 'default', 'web-lab', PatchType.merge, {endpoints: [{addresses: [podA], conditions: {ready: true}}]})
    await lab!.removePod(podB)
    const result = await sync()
    // Connections smartnat translated to a pod that left are dropped (test/e2e/conntrack-cleanup.test.ts).
    expect(result).to.include({changed: false, conntrackDeleted: 0, statusesWritten: 1})
    expect([await entries(podA), await entries(podB)]).to.deep.equal([1, 1])
    expect(mapping('web').status!.configuredAddresses).to.deep.equal({[EXT_A]: {host: hostname(), podIPs: [podA]}})
    expect(await reach('tcp', EXT_A, 8080)).to.equal(podA)
  })

  it('with the API down it fails naming the API and leaves the kernel alone', async () => {
    const kernel = await iptablesDump(lab!)
    await server!.stop()
    const result = await smartnat(syncArgs())
    expect(result.code).to.not.equal(0)
    expect(result.stderr).to.match(new RegExp(`listing \\w+s from /api.*127\\.0\\.0\\.1:${server!.port}.*ECONNREFUSED`))
    expect(await iptablesDump(lab!)).to.equal(kernel)
    expect(await reach('tcp', EXT_A, 8080)).to.equal(WEB_PODS[0])
  })
})
