/**
 * `smartnat watch --kubeconfig F --netns HOST` as a daemon against the test API server and the namespace
 * lab: Mappings created, scaled, broken and deleted through the API show up in the kernel, in traffic, in
 * conntrack and in each Mapping's status; an API outage keeps the rules, shows in /readyz and heals when
 * the server is back; kubectl shows what smartnat wrote; SIGTERM leaves the rules in place.
 */
import {expect} from 'chai'
import {execFile} from 'node:child_process'
import {hostname} from 'node:os'
import {join} from 'node:path'
import {listConntrackFlows} from '../../src/lib/host/conntrack.js'
import {inspectLock} from '../../src/lib/host/lock.js'
import type {MappingCondition, MappingStatus} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {PatchType, startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {eventually, iptablesDump, udpFlow} from '../support/e2e.js'
import {httpGet} from '../support/http.js'
import {startKubeWatch, type KubeWatch} from '../support/kube-watch.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {mappingManifest, serviceFromLab, serviceManifests, type MappingFixture} from '../support/mappings.js'
import {requireNeeds} from '../support/requirements.js'

const VIP = '198.19.100.10'
const POD_A = '198.19.200.11' as Ipv4
const POD_B = '198.19.200.12' as Ipv4
const [EXT_A, EXT_B, EXT_C] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]
const HOST_CLUSTER_SIDE = LAB_PLAN.host.cluster0.address
const WEB: MappingFixture = {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]}
const TEMP: MappingFixture = {name: 'temp', addresses: [EXT_B], serviceName: 'web', ports: [{port: 9090, servicePort: 80}]}
const BROKEN: MappingFixture = {name: 'broken', addresses: [EXT_C], serviceName: 'web', ports: [{port: 8080, servicePort: 81}]}
const BROKEN_REASON = 'service default/web has no tcp port 81'

interface StoredMapping {
  metadata: {name: string; resourceVersion: string; generation: number; finalizers?: string[]}
  status?: MappingStatus
}

interface StoredEvent {
  type: string
  reason: string
  message: string
  involvedObject: {name: string}
}

const condition = (status: MappingStatus | undefined, type: string): MappingCondition | undefined => status?.conditions?.find((c) => c.type === type)

describe('smartnat watch against the Kubernetes API, in the namespace lab (root)', function () {
  this.timeout(30_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let daemon: KubeWatch | undefined
  /** When the API server listened again after the outage. */
  let backAt: number | undefined

  const mapping = (name: string) => server!.api.get(server!.types.mappings, 'default', name) as unknown as StoredMapping
  const createMapping = (fixture: MappingFixture) => server!.api.create(server!.types.mappings, 'default', mappingManifest(fixture) as KubeObject)
  const events = (name: string) =>
    server!.api.list(server!.types.events, 'default', {}).items.map((e) => e as unknown as StoredEvent).filter((e) => e.involvedObject.name === name)
  const reach = async (address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp') => {
    const [result] = await lab!.requests(protocol, 'client1', CLIENT, address, port, 1, {timeoutMs: 500})
    return result!.ok ? result!.fields.pod! : result!.error
  }
  const reachesPod = async (address: string, port: number, protocol: 'tcp' | 'udp' = 'tcp') => {
    const answer = await reach(address, port, protocol)
    return answer === POD_A || answer === POD_B ? answer : undefined
  }
  const readyz = () => httpGet(daemon!.port, '/readyz')
  // A wait that times out shows what the daemon logged last.
  const withOutput = <T>(check: Promise<T>): Promise<T> => daemon!.withOutput(check)

  before(async function () {
    this.timeout(60_000)
    requireLab(this)
    lab = await createLab()
    server = await startApiServer({crds: ['crds/mapping.yaml']})
    server.createAll(serviceManifests(serviceFromLab('web', lab.services(), VIP)))
    daemon = await startKubeWatch(lab, server, ['--resync', '3s', '--log-level', 'debug'])
  })

  after(async () => {
    // However the tests ended, the daemon must not outlive them.
    await daemon?.stop()
    await server?.stop()
    await lab?.destroy()
  })

  it('becomes ready once it has listed the API and synced', async () => {
    const ready = await withOutput(eventually('/readyz 200', 20_000, async () => {
      const reply = await readyz()
      return reply.status === 200 ? reply : undefined
    }))
    expect(ready.body).to.equal('ready\n')
    await eventually('a watch per kind (Mappings, Services, EndpointSlices, Namespaces)', 5000, () => (server!.openWatches() === 4 ? true : undefined))
  })

  it('a Mapping created through the API carries traffic within seconds, and its status names the address and pods', async () => {
    expect(await reach(EXT_A, 8080), 'before the Mapping exists').to.equal('refused')
    createMapping(WEB)
    await withOutput(eventually('tcp to reach a pod', 5000, () => reachesPod(EXT_A, 8080)))
    expect(await reachesPod(EXT_A, 5300, 'udp')).to.be.oneOf([POD_A, POD_B])
    const status = await eventually('the status', 5000, () => mapping('web').status?.configuredAddresses ? mapping('web').status : undefined)
    expect(status).to.include({invalid: 'no', serviceVIP: VIP, observedGeneration: 1})
    expect(status!.configuredAddresses).to.deep.equal({[EXT_A]: {host: hostname(), podIPs: [POD_A, POD_B]}})
    expect(condition(status, 'Valid')).to.include({status: 'True'})
    expect(condition(status, 'Ready')).to.include({status: 'True', reason: 'Configured'})
    expect(events('web').map((e) => [e.type, e.reason])).to.deep.equal([['Normal', 'Configured']])
  })

  it('kubectl get mappings shows Valid True', async function () {
    requireNeeds(this, 'kubectl get mappings', {tools: ['kubectl']})
    const stdout = await new Promise<string>((resolve, reject) =>
      execFile(
        'kubectl',
        ['--kubeconfig', daemon!.kubeconfig, '--cache-dir', join(daemon!.dir, 'kubectl-cache'), '--request-timeout', '10s', 'get', 'mappings'],
        {timeout: 20_000},
        (error, out, err) => (error ? reject(new Error(`kubectl get mappings: ${err}`)) : resolve(out)),
      ),
    )
    const [header, ...rows] = stdout.trim().split('\n').map((line) => line.trim().split(/\s+/))
    expect(header).to.include.members(['NAME', 'VALID'])
    const web = rows.find((row) => row[0] === 'web')
    expect(web, stdout).to.not.equal(undefined)
    expect(web![header!.indexOf('VALID')]).to.equal('True')
  })

  it('a pod leaving the EndpointSlice leaves the status; the host’s own connections to it are not smartnat’s to drop', async () => {
    // A flow from the host straight to each pod: its conntrack entry's replies come from that pod.
    const flows = await Promise.all([
      udpFlow(lab!, 'host', {ip: HOST_CLUSTER_SIDE, port: 40001}, {ip: POD_A, port: 5353}, 2),
      udpFlow(lab!, 'host', {ip: HOST_CLUSTER_SIDE, port: 40002}, {ip: POD_B, port: 5353}, 2),
    ])
    expect(flows.map((lines) => lines.map((l) => l.split(' ')[0]))).to.deep.equal([[`pod=${POD_A}`, `pod=${POD_A}`], [`pod=${POD_B}`, `pod=${POD_B}`]])
    const entries = async (pod: Ipv4) => (await listConntrackFlows(lab!.hostRunner, {replySrc: pod})).length
    expect(await entries(POD_A)).to.equal(1)
    expect(await entries(POD_B)).to.equal(1)

    server!.api.patch(server!.types.endpointSlices, 'default', 'web-lab', PatchType.merge, {endpoints: [{addresses: [POD_A], conditions: {ready: true}}]})
    await lab!.removePod(POD_B)
    await withOutput(eventually('the status to lose the pod', 5000, () => {
      const podIPs = mapping('web').status?.configuredAddresses?.[EXT_A]?.podIPs
      return podIPs?.length === 1 ? podIPs : undefined
    })).then((podIPs) => expect(podIPs).to.deep.equal([POD_A]))
    // The pass that wrote the status ran its cleanup before: connections smartnat translated would be gone by now (test/e2e/conntrack-cleanup.test.ts).
    expect([await entries(POD_A), await entries(POD_B)]).to.deep.equal([1, 1])
    const logged = daemon!.log.split('\n').filter(Boolean).map((l) => JSON.parse(l) as {conntrackDeleted?: number})
    expect(logged.filter((l) => (l.conntrackDeleted ?? 0) > 0)).to.deep.equal([])
    expect(await reach(EXT_A, 8080)).to.equal(POD_A)
  })

  it('an invalid Mapping gets its reason, Valid=False and a Warning Event; the others keep working', async () => {
    const webVersion = mapping('web').metadata.resourceVersion
    createMapping(BROKEN)
    const status = await withOutput(eventually('the invalid status', 5000, () => mapping('broken').status))
    expect(status.invalid).to.equal(BROKEN_REASON)
    expect(condition(status, 'Valid')).to.include({status: 'False', reason: 'Invalid', message: BROKEN_REASON})
    const warnings = await eventually('the Warning Event', 5000, () => (events('broken').length > 0 ? events('broken') : undefined))
    expect(warnings.map((e) => [e.type, e.reason, e.message])).to.deep.equal([['Warning', 'Invalid', BROKEN_REASON]])
    expect(await reach(EXT_C, 8080), 'nothing is programmed for it').to.equal('refused')
    expect(await reach(EXT_A, 8080)).to.equal(POD_A)
    expect(mapping('web').metadata.resourceVersion, 'the valid Mapping’s status is left alone').to.equal(webVersion)
  })

  it('an edited Mapping moves its traffic to the new port and its status to the new generation', async () => {
    createMapping(TEMP)
    await withOutput(eventually('the new Mapping to carry traffic', 5000, () => reachesPod(EXT_B, 9090)))
    server!.api.patch(server!.types.mappings, 'default', 'temp', PatchType.merge, {spec: {ports: [{port: 9091, servicePort: 80}]}})
    await withOutput(eventually('the new port to carry traffic', 5000, () => reachesPod(EXT_B, 9091)))
    expect(await reach(EXT_B, 9090), 'the old port').to.equal('refused')
    const status = await eventually('the status of generation 2', 5000, () => (mapping('temp').status?.observedGeneration === 2 ? mapping('temp').status : undefined))
    expect(condition(status, 'Valid')).to.include({status: 'True', observedGeneration: 2})
    expect(condition(status, 'Ready')).to.include({status: 'True', observedGeneration: 2})
  })

  it('deleting a Mapping removes its rules and its traffic, with no finalizer in the way', async () => {
    await eventually('its status', 5000, () => mapping('temp').status?.configuredAddresses)
    expect(mapping('temp').metadata.finalizers).to.equal(undefined)
    expect(await iptablesDump(lab!)).to.include(`-d ${EXT_B}/32`)

    server!.api.delete(server!.types.mappings, 'default', 'temp')
    expect(() => mapping('temp'), 'gone at once').to.throw(/not found/)
    await withOutput(eventually('its rules to be gone', 5000, async () => ((await iptablesDump(lab!)).includes(EXT_B) ? undefined : true)))
    expect(await iptablesDump(lab!)).to.not.include('default/temp')
    expect((await lab!.exec('host', 'ipset', ['save'])).stdout).to.not.include(`${EXT_B},`)
    expect(await iptablesDump(lab!)).to.match(/DNAT --to-destination 198\.19\.100\.10:80/)
    expect(await reach(EXT_B, 9091)).to.equal('refused')
    expect(await reach(EXT_A, 8080)).to.equal(POD_A)
  })

  it('an API outage keeps the rules and the traffic, shows in /readyz, and heals when the server is back', async () => {
    const rules = await iptablesDump(lab!)
    await server!.stop()
    const during = await withOutput(eventually('/readyz to report the outage', 10_000, async () => {
      const reply = await readyz()
      return reply.status === 503 ? reply : undefined
    }))
    expect(during.body).to.match(/ECONNREFUSED|connect|unreachable/i)
    const metrics = await httpGet(daemon!.port, '/metrics')
    const failedLists = [...metrics.body.matchAll(/^smartnat_api_errors_total\{kind="\w+",verb="(?:list|watch)",code="error"\} (\d+)$/gm)]
    expect(failedLists.reduce((sum, match) => sum + Number(match[1]), 0)).to.be.at.least(1)
    // A resync from the cache happens meanwhile and must leave the rules as they are.
    await new Promise((resolve) => setTimeout(resolve, 3500))
    expect(await iptablesDump(lab!)).to.equal(rules)
    expect(await reach(EXT_A, 8080)).to.equal(POD_A)
    expect(await reach(EXT_A, 5300, 'udp')).to.equal(POD_A)
    const still = await readyz()
    expect(still.status, `still reporting the outage: ${still.body}`).to.equal(503)

    // Back on the same port over the same objects, as after a restart of kube-apiserver.
    await server!.listenAgain()
    backAt = Date.now()
    const after = await withOutput(eventually('/readyz to recover', 20_000, async () => {
      const reply = await readyz()
      return reply.status === 200 && reply.body === 'ready\n' ? reply : undefined
    }))
    expect(after.body).to.equal('ready\n')
    await eventually('the watches to be back (Mappings, Services, EndpointSlices, Namespaces)', 5000, () => (server!.openWatches() === 4 ? true : undefined))
  })

  it('SIGTERM: exits 0 and leaves the rules working', async () => {
    const rules = await iptablesDump(lab!)
    daemon!.cli.child.kill('SIGTERM')
    const result = await Promise.race([daemon!.cli.done, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 15_000))])
    expect(result, 'exited within 15 s of SIGTERM').to.not.equal(undefined)
    expect(result!.code, `signal ${daemon!.cli.child.signalCode}: ${result!.stderr}${result!.stdout.split('\n').slice(-5).join('\n')}`).to.equal(0)
    expect(await iptablesDump(lab!)).to.equal(rules)
    expect(await reach(EXT_A, 8080)).to.equal(POD_A)
    expect(await inspectLock(daemon!.lockFile), 'the lock let go of, its holder cleared').to.deep.equal({held: false, holder: undefined})

    const lines = result!.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as {time: string; level: string; msg: string; kind?: string})
    const apiErrors = lines.filter((l) => l.msg.startsWith('Kubernetes API error'))
    expect(apiErrors.length, 'the outage was logged').to.be.at.least(1)
    // An attempt started just before the server came back may still fail; later ones must not be reported as errors.
    const late = apiErrors.filter((l) => Date.parse(l.time) > backAt! + 1000)
    expect(late, 'API errors logged after the server was back').to.deep.equal([])
    const recovered = lines.filter((l) => l.msg === 'Kubernetes API reachable again').map((l) => l.kind)
    expect(recovered, 'each kind that failed says when it is back').to.have.members([...new Set(apiErrors.map((l) => l.kind))])
    expect(lines.map((l) => l.msg)).to.include('stopped; rules left in place')
  })
})
