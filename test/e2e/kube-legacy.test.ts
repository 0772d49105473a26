/**
 * `smartnat watch` taking over from the Go controller, against the test API server and the namespace lab:
 * a Mapping carrying the Go controller's finalizer is deleted (its rules go first, then the finalizer, and
 * the object is gone), status keys no live host maintains (the Go controller's, a dead host's) are removed
 * and stop counting towards Ready, the host's Lease is renewed, and a Go host still writing the whole object
 * beside it (its status dropped by the status subresource) makes smartnat write nothing.
 */
import {expect} from 'chai'
import {hostname} from 'node:os'
import type {MappingStatus} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {GO_CONTROLLER_FINALIZER} from '../../src/lib/sync/finalizers.js'
import {HOST_LEASE_LABEL, leaseName} from '../../src/lib/sync/lease.js'
import {startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {eventually, iptablesDump} from '../support/e2e.js'
import {startKubeWatch, type KubeWatch} from '../support/kube-watch.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {mappingManifest, serviceFromLab, serviceManifests, type MappingFixture} from '../support/mappings.js'

const VIP = '198.19.100.10'
const POD_A = '198.19.200.11' as Ipv4
const POD_B = '198.19.200.12' as Ipv4
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]
/** Addresses of no host in the lab: what a Go host or a host that is gone once served. */
const GO_ADDRESS = '198.18.9.9'
const DEAD_ADDRESS = '198.18.9.10'
const OLD: MappingFixture = {name: 'old', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}
const ELSEWHERE: MappingFixture = {name: 'elsewhere', addresses: [GO_ADDRESS, DEAD_ADDRESS], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}
const MIXED: MappingFixture = {name: 'mixed', addresses: [EXT_B, GO_ADDRESS], serviceName: 'web', ports: [{port: 9090, servicePort: 80}]}

interface StoredMapping {
  metadata: {name: string; resourceVersion: string; finalizers?: string[]; deletionTimestamp?: string}
  spec: Record<string, unknown>
  status?: MappingStatus
}

describe('smartnat watch replacing the Go controller, against the Kubernetes API, in the namespace lab (root)', function () {
  this.timeout(30_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let daemon: KubeWatch | undefined
  const requests: string[] = []

  const mapping = (name: string) => server!.api.get(server!.types.mappings, 'default', name) as unknown as StoredMapping
  const exists = (name: string) => server!.api.list(server!.types.mappings, 'default', {}).items.some((m) => m.metadata.name === name)
  const ready = (name: string) => mapping(name).status?.conditions?.find((c) => c.type === 'Ready')
  const statusWrites = () => requests.filter((r) => r.startsWith('PATCH ') && r.includes('/mappings/') && r.includes('/status')).length
  const withGoFinalizer = (fixture: MappingFixture) => {
    const manifest = mappingManifest(fixture) as {metadata: Record<string, unknown>}
    return {...manifest, metadata: {...manifest.metadata, finalizers: [GO_CONTROLLER_FINALIZER]}} as unknown as KubeObject
  }
  /** What the Go controller's Update of the whole object sends: the stored object with its own status key added. */
  const goUpdate = (name: string, address: string) => {
    const current = mapping(name)
    const status = {...current.status, configuredAddresses: {...current.status?.configuredAddresses, [address]: {podIPs: [POD_A]}}}
    server!.api.update(server!.types.mappings, 'default', name, {...current, metadata: {...current.metadata, finalizers: [GO_CONTROLLER_FINALIZER]}, status})
  }
  const reach = async (address: string, port: number) => {
    const [result] = await lab!.requests('tcp', 'client1', CLIENT, address, port, 1, {timeoutMs: 500})
    return result!.ok ? result!.fields.pod! : result!.error
  }
  const withOutput = <T>(check: Promise<T>): Promise<T> => daemon!.withOutput(check)

  before(async function () {
    this.timeout(60_000)
    requireLab(this)
    lab = await createLab()
    server = await startApiServer({crds: ['crds/mapping.yaml'], log: (line) => requests.push(line)})
    server.api.create(server.types.namespaces, undefined, {metadata: {name: 'smartnat-system'}})
    server.createAll(serviceManifests(serviceFromLab('web', lab.services(), VIP)))
    // As the Go controller left them: its finalizer, its key (no host) and a key of a host that is gone.
    server.api.create(server!.types.mappings, 'default', withGoFinalizer(OLD))
    server.api.create(server!.types.mappings, 'default', withGoFinalizer(ELSEWHERE))
    server.api.patch(server!.types.mappings, 'default', 'elsewhere', 'application/merge-patch+json', {
      status: {invalid: 'no', configuredAddresses: {[GO_ADDRESS]: {podIPs: [POD_A]}, [DEAD_ADDRESS]: {podIPs: [POD_A], host: 'edge-gone'}}},
    }, {status: true})
    // The host that is gone left its Lease behind, never to be renewed again.
    server.api.create(server!.types.leases, 'smartnat-system', {
      metadata: {name: leaseName('edge-gone'), labels: {[HOST_LEASE_LABEL]: 'true'}},
      spec: {holderIdentity: 'edge-gone', leaseDurationSeconds: 2, renewTime: '2026-01-01T00:00:00.000000Z'},
    })
    daemon = await startKubeWatch(lab, server, ['--resync', '2s', '--lease-duration', '4s', '--log-level', 'debug'])
    await daemon.ready()
  })

  after(async () => {
    await daemon?.stop()
    await server?.stop()
    await lab?.destroy()
  })

  it('renews its own Lease in the Lease namespace, named after the host', async () => {
    const lease = () => server!.api.get(server!.types.leases, 'smartnat-system', leaseName(hostname())) as unknown as {spec: {holderIdentity: string; leaseDurationSeconds: number; renewTime: string}}
    const first = await withOutput(eventually('its Lease', 5000, () => lease().spec.renewTime))
    expect(lease().spec).to.include({holderIdentity: hostname(), leaseDurationSeconds: 4})
    await withOutput(eventually('a renewal', 5000, () => (lease().spec.renewTime > first ? true : undefined)))
  })

  it('removes the status keys no live host maintains, and Ready stops counting them', async () => {
    // edge-gone's Lease counts as renewed when first seen, and expires 2 s later.
    await withOutput(eventually('the stale keys to go', 12_000, () => (Object.keys(mapping('elsewhere').status?.configuredAddresses ?? {}).length === 0 ? true : undefined)))
    expect(ready('elsewhere')).to.include({status: 'False', reason: 'NoLocalAddress'})
    expect(mapping('old').status!.configuredAddresses).to.deep.equal({[EXT_A]: {podIPs: [POD_A, POD_B], host: hostname()}})
    expect(ready('old')).to.include({status: 'True', message: `serving on ${EXT_A}`})
  })

  it('a Go host writing the whole object beside it changes no status, and smartnat writes nothing back', async () => {
    server!.api.create(server!.types.mappings, 'default', mappingManifest(MIXED) as KubeObject)
    await withOutput(eventually('its key', 5000, () => mapping('mixed').status?.configuredAddresses?.[EXT_B]))
    goUpdate('mixed', GO_ADDRESS)
    expect(mapping('mixed').metadata.finalizers, 'the Go host added its finalizer').to.deep.equal([GO_CONTROLLER_FINALIZER])
    expect(Object.keys(mapping('mixed').status!.configuredAddresses!), 'the status subresource dropped its key').to.deep.equal([EXT_B])
    const writes = statusWrites()
    // Two resync intervals: every pass reads the Go host's object and finds nothing to write.
    await new Promise((resolve) => setTimeout(resolve, 4500))
    goUpdate('mixed', GO_ADDRESS)
    await new Promise((resolve) => setTimeout(resolve, 2500))
    expect(statusWrites() - writes).to.equal(0)
    expect(ready('mixed')).to.include({status: 'True', message: `serving on ${EXT_B}`})
    expect(await reach(EXT_B, 9090)).to.be.oneOf([POD_A, POD_B])
  })

  it('a Mapping deleted with the Go controller\'s finalizer on it loses its rules, then the finalizer, and is gone', async () => {
    expect(await reach(EXT_A, 8080)).to.be.oneOf([POD_A, POD_B])
    server!.api.delete(server!.types.mappings, 'default', 'old')
    expect(mapping('old').metadata.deletionTimestamp, 'held by the finalizer').to.be.a('string')
    await withOutput(eventually('the Mapping to be gone', 8000, () => (exists('old') ? undefined : true)))
    // The finalizer goes only after a pass applied without the Mapping: by now its rules are gone.
    const rules = await iptablesDump(lab!)
    expect(rules).to.not.include('default/old')
    expect(rules).to.not.include(`-d ${EXT_A}/32`)
    expect(await reach(EXT_A, 8080)).to.equal('refused')
    expect(daemon!.log).to.not.match(/"level":"(warn|error)".*finalizer/)
  })
})
