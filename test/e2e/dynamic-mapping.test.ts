/**
 * Mappings that ask for an address or a port: `smartnat watch` against the test API server and the
 * namespace lab. A Mapping naming an AddressPool and leaving its port empty gets both, recorded in
 * status.allocated (kubectl shows it), and carries traffic on them; a Mapping listing its address gets
 * a port of the dynamic range there; a Mapping the pool cannot serve waits, saying why in its status,
 * and gets the address once the Mapping holding it is deleted. A sync from cron allocates on one run
 * and programs on the next.
 */
import {expect} from 'chai'
import {execFile} from 'node:child_process'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parse} from 'yaml'
import {NOT_RECORDED} from '../../src/lib/allocate/pending.js'
import type {MappingResource} from '../../src/lib/mapping/types.js'
import {startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {eventually, type SyncJson} from '../support/e2e.js'
import {startKubeWatch, type KubeWatch} from '../support/kube-watch.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {serviceFromLab, serviceManifests} from '../support/mappings.js'
import {requireNeeds} from '../support/requirements.js'
import {smartnatJson} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const [EXT_A, EXT_B, EXT_C] = LAB_PLAN.host.eth1.addresses
const [CLIENT] = LAB_PLAN.client1.addresses

/** The test API server with the Mapping and AddressPool CRDs, an AddressPool edge holding `address` alone, and the lab's Service web. */
async function startPoolServer(lab: Lab, address: string): Promise<ApiServer> {
  const server = await startApiServer({crds: ['crds/mapping.yaml', 'crds/addresspool.yaml']})
  // Where the host Leases and the allocator Lease live (deploy/rbac.yaml creates it in a cluster).
  server.api.create(server.types.namespaces, undefined, {apiVersion: 'v1', kind: 'Namespace', metadata: {name: 'smartnat-system'}} as unknown as KubeObject)
  server.api.create(server.types.addressPools, undefined, {metadata: {name: 'edge'}, spec: {addresses: [address]}} as unknown as KubeObject)
  server.createAll(serviceManifests(serviceFromLab('web', lab.services(), VIP)))
  return server
}

describe('Mappings that ask for an address or a port, with smartnat watch in the namespace lab (root)', function () {
  this.timeout(30_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let daemon: KubeWatch | undefined

  const stored = (name: string) => server!.api.get(server!.types.mappings, 'default', name) as unknown as MappingResource
  const create = (name: string, spec: Record<string, unknown>) =>
    server!.api.create(server!.types.mappings, 'default', {apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', metadata: {name}, spec: {serviceName: 'web', ...spec}} as unknown as KubeObject)
  const reachesPod = async (address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp') => {
    const [result] = await lab!.requests(protocol, 'client1', CLIENT!, address, port, 1, {timeoutMs: 500})
    return result!.ok && PODS.includes(result!.fields.pod ?? '') ? result!.fields.pod : undefined
  }
  const withOutput = <T>(check: Promise<T>): Promise<T> => daemon!.withOutput(check)
  const allocatedTo = (name: string) => withOutput(eventually(`status.allocated of ${name}`, 10_000, () => stored(name).status?.allocated))

  before(async function () {
    this.timeout(60_000)
    requireLab(this)
    lab = await createLab()
    // One address in the pool: a Mapping naming it gets that address of its own, the next one waits.
    server = await startPoolServer(lab, EXT_B!)
    daemon = await startKubeWatch(lab, server, ['--resync', '3s', '--dynamic-ports', '30000-30009'])
    await daemon.ready()
  })

  after(async () => {
    await daemon?.stop()
    await server?.stop()
    await lab?.destroy()
  })

  it('a Mapping with no address and no port gets both, recorded in its status, and serves traffic on them', async () => {
    create('dyn', {addressPool: 'edge', ports: [{servicePort: 80}]})
    expect(await allocatedTo('dyn')).to.deep.equal({pool: 'edge', addresses: [EXT_B], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]})
    expect(await withOutput(eventually('traffic to the allocated address and port', 10_000, () => reachesPod(EXT_B!, 30000)))).to.be.oneOf(PODS)
    await withOutput(eventually('Ready=True', 10_000, () => stored('dyn').status?.conditions?.find((c) => c.type === 'Ready' && c.status === 'True')))
    const events = server!.api.list(server!.types.events, 'default', {}).items as unknown as {type: string; reason: string; message: string; involvedObject: {kind: string; name: string}}[]
    expect(events.filter((e) => e.involvedObject.name === 'dyn').map((e) => `${e.type} ${e.reason}: ${e.message}`)).to.include.members([
      `Normal Allocated: allocated ${EXT_B} from AddressPool edge, tcp/30000 to servicePort 80`,
    ])
    expect(events.some((e) => e.involvedObject.name === 'dyn' && e.type === 'Warning'), 'no Warning for the pass that waited for the record').to.equal(false)
    expect(stored('dyn').status?.invalid).to.equal('no')
    expect(stored('dyn').status?.configuredAddresses?.[EXT_B!]?.podIPs).to.deep.equal(PODS)
  })

  it('kubectl get mapping shows status.allocated, in YAML and in the wide columns', async function () {
    requireNeeds(this, 'kubectl get mapping', {tools: ['kubectl']})
    const kubectl = (...args: string[]) => new Promise<string>((resolve, reject) =>
      execFile('kubectl', ['--kubeconfig', daemon!.kubeconfig, '--cache-dir', join(daemon!.dir, 'kubectl-cache'), ...args], {timeout: 20_000}, (error, out, err) =>
        error ? reject(new Error(`kubectl ${args.join(' ')}: ${err}`)) : resolve(out)),
    )
    expect((parse(await kubectl('get', 'mapping', 'dyn', '-o', 'yaml')) as MappingResource).status?.allocated).to.deep.equal({pool: 'edge', addresses: [EXT_B], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]})
    // Cells by the header's column positions: the Mapping's own Addresses and Ports cells are empty.
    const [header, row] = (await kubectl('get', 'mapping', 'dyn', '-o', 'wide')).split('\n') as [string, string]
    const cell = (name: string) => {
      const start = header.indexOf(name)
      const next = header.slice(start + name.length).search(/\S/)
      return row.slice(start, next < 0 ? undefined : start + name.length + next).trim()
    }
    expect(cell('ALLOCATED-ADDRESSES')).to.equal(JSON.stringify([EXT_B]))
    expect(cell('ALLOCATED-PORTS')).to.equal('30000')
  })

  it('a Mapping listing its address and leaving its ports empty gets ports of the range there, one per protocol', async () => {
    create('ports', {addresses: [EXT_A], ports: [{servicePort: 80}, {servicePort: 53, protocol: 'udp'}, {port: 30000, servicePort: 80}]})
    expect(await allocatedTo('ports')).to.deep.equal({addresses: [EXT_A], ports: [{protocol: 'tcp', servicePort: 80, port: 30001}, {protocol: 'udp', servicePort: 53, port: 30000}]})
    expect(await withOutput(eventually('tcp on the allocated port', 10_000, () => reachesPod(EXT_A!, 30001)))).to.be.oneOf(PODS)
    expect(await withOutput(eventually('udp on the allocated port', 10_000, () => reachesPod(EXT_A!, 30000, 'udp')))).to.be.oneOf(PODS)
  })

  it('a Mapping the pool cannot serve waits, saying why in its status, and gets the address once its holder is deleted', async () => {
    create('waits', {addressPool: 'edge', ports: [{servicePort: 80}]})
    const reason = await withOutput(eventually('the pending reason', 10_000, () => stored('waits').status?.invalid))
    expect(reason).to.equal('not allocated: AddressPool edge has no free address')
    expect(stored('waits').status?.allocated).to.equal(undefined)
    server!.api.delete(server!.types.mappings, 'default', 'dyn')
    expect(await allocatedTo('waits')).to.deep.equal({pool: 'edge', addresses: [EXT_B], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]})
    expect(await withOutput(eventually('traffic to the new holder', 10_000, () => reachesPod(EXT_B!, 30000)))).to.be.oneOf(PODS)
  })
})

describe('a Mapping that asks for an address and a port, with smartnat sync from cron in the namespace lab (root)', function () {
  this.timeout(60_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let dir: string | undefined

  const sync = () => smartnatJson<SyncJson>(['sync', '--kubeconfig', join(dir!, 'kubeconfig'), '--netns', lab!.ns('host'), '--lock-file', join(dir!, 'smartnat.lock')])

  before(async function () {
    requireLab(this)
    lab = await createLab()
    server = await startPoolServer(lab, EXT_C!)
    dir = await mkdtemp(join(tmpdir(), 'smartnat-dyn-sync-'))
    await server.writeKubeconfig(join(dir, 'kubeconfig'))
    server.api.create(server!.types.mappings, 'default', {apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', metadata: {name: 'cron'}, spec: {addressPool: 'edge', serviceName: 'web', ports: [{servicePort: 80}]}} as unknown as KubeObject)
  })

  after(async () => {
    await server?.stop()
    await lab?.destroy()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  it('the first run allocates and records, the second programs it, and traffic flows', async () => {
    const first = await sync()
    expect(first.mappings.map(({name, valid, reason}) => ({name, valid, reason}))).to.deep.equal([{name: 'cron', valid: false, reason: NOT_RECORDED}])
    expect((server!.api.get(server!.types.mappings, 'default', 'cron') as unknown as MappingResource).status?.allocated).to.deep.equal({
      pool: 'edge', addresses: [EXT_C], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}],
    })
    const second = await sync()
    expect(second).to.include({configured: 1, invalid: 0, changed: true})
    const [result] = await lab!.requests('tcp', 'client1', CLIENT!, EXT_C!, 30000, 1, {timeoutMs: 800})
    expect(result!.ok && result!.fields.pod).to.be.oneOf(PODS)
    expect(await sync()).to.include({configured: 1, changed: false})
  })
})
