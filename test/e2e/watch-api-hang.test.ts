/**
 * `smartnat watch` against the test API server through a proxy that hangs requests, in the namespace
 * lab, on both backends: status writes that hang hold up no sync (a new Mapping, then a change to it,
 * still reach the kernel, and the traffic of the others never stops); with every request hanging the
 * periodic sync still repairs the kernel, /healthz stays 200 and /readyz says 503 with the reason;
 * once the API answers again the statuses are written and /readyz turns 200; SIGTERM while status
 * writes hang ends the daemon at once, the rules left in place.
 */
import {expect} from 'chai'
import type {MappingStatus} from '../../src/lib/mapping/types.js'
import {PatchType, startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {BACKENDS, cleanHost, requireBackend} from '../support/backends.js'
import {eventually} from '../support/e2e.js'
import {kubeconfigThrough, startFaultProxy, statusWrites, type FaultProxy} from '../support/fault-proxy.js'
import {httpGet} from '../support/http.js'
import {startKubeWatch, type KubeWatch} from '../support/kube-watch.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {mappingManifest, serviceFromLab, serviceManifests, type MappingFixture} from '../support/mappings.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]
const RESYNC_MS = 2000
const WEB: MappingFixture = {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}
const LATE: MappingFixture = {name: 'late', addresses: [EXT_B], serviceName: 'web', ports: [{port: 9090, servicePort: 80}]}

interface StoredMapping {
  metadata: {generation: number}
  status?: MappingStatus
}

for (const backend of BACKENDS) {
  describe(`smartnat watch when the API server hangs (root, ${backend.name})`, function () {
    this.timeout(30_000)
    let lab: Lab | undefined
    let server: ApiServer | undefined
    let proxy: FaultProxy | undefined
    let daemon: KubeWatch | undefined
    /** Requests that go through to the first Mapping while the API misbehaves, and those that failed. */
    const traffic = {sent: 0, failed: [] as string[]}
    let probing: Promise<void> | undefined
    let probe = true

    const stored = (name: string) => server!.api.get(server!.types.mappings, 'default', name) as unknown as StoredMapping
    const reach = async (address: string, port: number) => {
      const [result] = await lab!.requests('tcp', 'client1', CLIENT, address, port, 1, {timeoutMs: 500})
      return result!.ok ? result!.fields.pod! : result!.error
    }
    const reachesPod = async (address: string, port: number) => {
      const answer = await reach(address, port)
      return PODS.includes(answer) ? answer : undefined
    }
    // A wait that times out shows what the daemon logged last.
    const withOutput = <T>(check: Promise<T>): Promise<T> => daemon!.withOutput(check)
    const logged = (msg: string) => daemon!.log.split('\n').filter((line) => line.includes(`"msg":"${msg}"`)).length

    /** Sends one request after another to the first Mapping until told to stop (at most 2 minutes' worth). */
    async function keepSending(): Promise<void> {
      for (let i = 0; probe && i < 600; i++) {
        const answer = await reach(EXT_A!, 8080)
        traffic.sent++
        if (!PODS.includes(answer)) traffic.failed.push(answer)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }

    before(async function () {
      this.timeout(60_000)
      requireLab(this)
      requireBackend(this, backend)
      lab = await createLab()
      await cleanHost(lab, backend)
      server = await startApiServer({crds: ['crds/mapping.yaml']})
      proxy = await startFaultProxy(server.port)
      server.createAll(serviceManifests(serviceFromLab('web', lab.services(), VIP)))
      server.api.create(server!.types.mappings, 'default', mappingManifest(WEB) as KubeObject)
      daemon = await startKubeWatch(lab, kubeconfigThrough(server, proxy), [
        '--backend', backend.name,
        '--resync', `${RESYNC_MS / 1000}s`,
        '--status-timeout', '1s',
        '--log-level', 'debug',
      ])
    })

    after(async () => {
      probe = false
      await probing
      // However the tests ended, the daemon must not outlive them.
      await daemon?.stop()
      await proxy?.close()
      await server?.stop()
      await lab?.destroy()
    })

    it('serves the first Mapping and writes its status', async () => {
      await daemon!.ready()
      await withOutput(eventually('traffic to the first Mapping', 5000, () => reachesPod(EXT_A!, 8080)))
      await eventually('its status', 5000, () => stored('web').status?.observedGeneration)
      probing = keepSending()
    })

    it('status writes that hang hold up no sync: a new Mapping, then a change to it, reach the kernel', async () => {
      proxy!.hang(statusWrites)
      const since = Date.now()
      server!.api.create(server!.types.mappings, 'default', mappingManifest(LATE) as KubeObject)
      await withOutput(eventually('the new Mapping to carry traffic', 5000, () => reachesPod(EXT_B!, 9090)))
      await eventually('its status write to hang', 5000, () => (proxy!.held() > 0 ? true : undefined))
      // Before the writeback ran apart from the pass, the pass above never ended and no later one began.
      server!.api.patch(server!.types.mappings, 'default', 'late', PatchType.merge, {spec: {ports: [{port: 9091, servicePort: 80}]}})
      await withOutput(eventually('the changed port to carry traffic', 5000, () => reachesPod(EXT_B!, 9091)))
      expect(await reach(EXT_B!, 9090), 'the old port').to.equal('refused')
      expect(stored('late').status, 'nothing written').to.equal(undefined)
      await withOutput(eventually('a writeback abandoned at its deadline', 5000, () => (logged('status writeback abandoned; the next sync writes again') > 0 ? true : undefined)))

      const notReady = await withOutput(eventually('/readyz 503', 2 * RESYNC_MS + 3000, async () => {
        const reply = await httpGet(daemon!.port, '/readyz')
        return reply.status === 503 ? reply : undefined
      }))
      expect(Date.now() - since, 'not ready within twice --resync of the first status that could not be written, and some slack').to.be.below(2 * RESYNC_MS + 3000)
      expect(notReady.body).to.match(/^not ready: Mapping statuses not written for \d+(\.\d)?s, more than twice the resync interval \(2s\): status writeback timed out after 1s\n$/)
      expect(await httpGet(daemon!.port, '/healthz')).to.deep.equal({status: 200, body: 'ok\n'})
    })

    it('with every request hanging, the periodic sync still repairs the kernel; /healthz 200, /readyz 503', async () => {
      proxy!.hang()
      // Only the new Mapping's part: the traffic of the first must keep flowing.
      // The periodic sync may repair the rule before a probe could see it missing, so the repair is
      // proven by a pass that applied changes after the removal, not by traffic failing in between.
      const appliedBefore = logged('sync applied changes')
      await backend.removeMappingPart(lab!, {address: EXT_B!, protocol: 'tcp', port: 9091, target: `${VIP}:80`, mapping: 'default/late'})
      await withOutput(eventually('the periodic sync to repair it', 3 * RESYNC_MS + 2000, async () =>
        logged('sync applied changes') > appliedBefore ? reachesPod(EXT_B!, 9091) : undefined))
      expect((await httpGet(daemon!.port, '/readyz')).status).to.equal(503)
      expect(await httpGet(daemon!.port, '/healthz')).to.deep.equal({status: 200, body: 'ok\n'})
      const metrics = (await httpGet(daemon!.port, '/metrics')).body
      expect(Number(/^smartnat_status_writeback_failures_total\{reason="timeout"\} (\d+)$/m.exec(metrics)?.[1])).to.be.at.least(1)
    })

    it('once the API answers again, the statuses are written and /readyz turns 200; the traffic never stopped', async () => {
      proxy!.passThrough()
      await withOutput(eventually('/readyz 200', 3 * RESYNC_MS + 5000, async () => ((await httpGet(daemon!.port, '/readyz')).status === 200 ? true : undefined)))
      const late = await eventually('the status of the changed Mapping', 5000, () => (stored('late').status?.observedGeneration === 2 ? stored('late') : undefined))
      expect(late.status!.configuredAddresses).to.have.keys(EXT_B!)
      probe = false
      await probing
      expect(traffic.sent, 'requests sent to the first Mapping meanwhile').to.be.at.least(5)
      expect(traffic.failed, 'requests to the first Mapping that failed').to.deep.equal([])
    })

    it('SIGTERM while status writes hang: exits 0 within seconds and leaves the rules in place', async () => {
      proxy!.hang(statusWrites)
      server!.api.patch(server!.types.mappings, 'default', 'late', PatchType.merge, {spec: {ports: [{port: 9092, servicePort: 80}]}})
      await withOutput(eventually('the changed port to carry traffic', 5000, () => reachesPod(EXT_B!, 9092)))
      await eventually('its status write to hang', 5000, () => (proxy!.held() > 0 ? true : undefined))
      proxy!.hang()
      daemon!.cli.child.kill('SIGTERM')
      const result = await Promise.race([daemon!.cli.done, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 15_000))])
      expect(result, `exited within 15 s of SIGTERM\n${daemon!.log.split('\n').slice(-5).join('\n')}`).to.not.equal(undefined)
      expect(result!.code, result!.stderr).to.equal(0)
      expect(logged('stopped; rules left in place')).to.equal(1)
      expect(await reachesPod(EXT_A!, 8080)).to.be.oneOf(PODS)
      expect(await reachesPod(EXT_B!, 9092)).to.be.oneOf(PODS)
    })
  })
}
