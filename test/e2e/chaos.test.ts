/**
 * Chaos in the namespace lab, with the real `smartnat watch` daemon: the API server hangs, fails with
 * 500 for a while, restarts onto a new resourceVersion history; the daemon is SIGKILLed mid-apply; a
 * manifest is truncated; an interface loses its address; a host `sync` races the daemon. Meanwhile a
 * monitor opens a new TCP connection and a UDP exchange every ~50 ms to each Mapping the fault leaves
 * alone. Each case asserts that not one of those probes is lost and that the daemon reconciles again
 * afterwards; the time until /readyz answers 200 again is reported, not asserted (only a generous
 * bounded wait). The table of every case is printed at the end and written to tmp/chaos-report.md.
 *
 * The API cases (1-3) run on the first backend only: the kernel does the same thing under them. The
 * others run on every backend. SMARTNAT_CHAOS_OUTAGE_SECONDS (default 60) is how long the API server
 * hangs and fails with 500s.
 */
import {expect} from 'chai'
import {readFile, truncate, writeFile} from 'node:fs/promises'
import {startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'
import {BACKENDS, requireBackend} from '../support/backends.js'
import {reachesPod, runChaosCase, waitReachable, type CaseRun, type MonitorGroup} from '../support/chaos-case.js'
import {chaosTable, writeChaosReport, CHAOS_REPORT_PATH, type ChaosRow} from '../support/chaos-report.js'
import {eventually, syncArgs} from '../support/e2e.js'
import {kubeconfigThrough, startFaultProxy, statusWrites, type FaultProxy} from '../support/fault-proxy.js'
import {httpGet, metricValue} from '../support/http.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {ManifestDir, mappingManifest, serviceFromLab, serviceManifests, type MappingFixture, type ServiceFixture} from '../support/mappings.js'
import {requireNeeds} from '../support/requirements.js'
import {smartnat, type CliResult} from '../support/smartnat-cli.js'
import type {MonitorTarget} from '../support/traffic-monitor.js'

const OUTAGE_SECONDS = Number(process.env.SMARTNAT_CHAOS_OUTAGE_SECONDS ?? 60)
if (!(OUTAGE_SECONDS > 0)) throw new Error(`SMARTNAT_CHAOS_OUTAGE_SECONDS="${process.env.SMARTNAT_CHAOS_OUTAGE_SECONDS}" must be a positive number of seconds`)
/** Bounds each case's daemon and monitors: the longest case is an outage plus its recovery. */
const LIMIT_SECONDS = OUTAGE_SECONDS + 240

const VIP = '198.19.100.10'
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const ETH2 = LAB_PLAN.host.eth2.addresses[0]
const ETH2_CIDR = `${ETH2}/${LAB_PLAN.host.eth2.prefixLength}`

/** Untouched by every case: tcp and udp on eth1, from client1. */
const WEB: MappingFixture = {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]}
/** Untouched except when eth2 loses its address: tcp on eth2, from client2 (replies must leave by eth2). */
const EDGE: MappingFixture = {name: 'edge', addresses: [ETH2], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}
/** Mappings a case adds or removes to see the daemon still reconciling: all on eth1's second address. */
const probeMapping = (n: number): MappingFixture => ({name: `probe-${n}`, addresses: [EXT_B], serviceName: 'web', ports: [{port: 9000 + n, servicePort: 80}]})
const probeTarget = (n: number): MonitorTarget => ({protocol: 'tcp', ip: EXT_B, port: 9000 + n})

const CLIENT1 = {from: 'client1', source: LAB_PLAN.client1.addresses[0]} as const
const CLIENT2 = {from: 'client2', source: LAB_PLAN.client2.addresses[0]} as const
const WEB_MONITOR: MonitorGroup = {...CLIENT1, targets: [{protocol: 'tcp', ip: EXT_A, port: 8080}, {protocol: 'udp', ip: EXT_A, port: 5300}]}
const EDGE_TARGET: MonitorTarget = {protocol: 'tcp', ip: ETH2, port: 8080}
const EDGE_MONITOR: MonitorGroup = {...CLIENT2, targets: [EDGE_TARGET]}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

/** The test API server with the lab's Service and the untouched Mappings, behind a fault proxy. */
interface KubeWorld {
  server: ApiServer
  proxy: FaultProxy
  createMapping(fixture: MappingFixture): void
  close(): Promise<void>
}

async function kubeWorld(web: ServiceFixture): Promise<KubeWorld> {
  const server = await startApiServer({crds: ['crds/mapping.yaml']})
  for (const object of serviceManifests(web)) {
    const resource = object.kind === 'Service' ? server.types.services : server.types.endpointSlices
    server.api.create(resource, 'default', object as KubeObject)
  }
  const createMapping = (fixture: MappingFixture) => void server.api.create(server.types.mappings, 'default', mappingManifest(fixture) as KubeObject)
  for (const fixture of [WEB, EDGE]) createMapping(fixture)
  const proxy = await startFaultProxy(server.port)
  return {server, proxy, createMapping, close: async () => void (await Promise.all([proxy.close(), server.stop()]))}
}

describe('chaos: traffic of untouched Mappings never stops (namespace lab, real watch daemon, root)', function () {
  const rows: ChaosRow[] = []

  after(async () => {
    if (rows.length === 0) return
    const table = chaosTable(rows, `API outages of ${OUTAGE_SECONDS} s, probes every 50 ms with a 1 s deadline`)
    console.log(`\n${table}`)
    await writeChaosReport(table)
    console.log(`(written to ${CHAOS_REPORT_PATH})`)
  })

  for (const backend of BACKENDS) describe(`${backend.name}`, function () {
    this.timeout((LIMIT_SECONDS + 60) * 1000)
    let lab: Lab | undefined
    let dir: ManifestDir | undefined
    let web: ServiceFixture

    before(async function () {
      requireLab(this)
      requireBackend(this, backend)
      lab = await createLab({echoLifetimeSeconds: 3600})
      web = serviceFromLab('web', lab.services(), VIP)
    })
    after(async () => {
      await lab?.destroy()
    })
    beforeEach(async () => {
      dir = await ManifestDir.create()
    })
    afterEach(async () => {
      await dir?.remove()
    })

    const chaos = (name: string, options: {source: string[]; resync?: string; monitors?: MonitorGroup[]}, body: (run: CaseRun) => Promise<void>) =>
      runChaosCase(
        {name, lab: lab!, backend, dir: dir!, source: options.source, ...(options.resync ? {resync: options.resync} : {}), monitors: options.monitors ?? [WEB_MONITOR, EDGE_MONITOR], limitSeconds: LIMIT_SECONDS, body},
        (row) => rows.push(row),
      )

    /** The kube cases: the daemon reads the test API server, through the fault proxy unless told otherwise. */
    const kubeChaos = async (name: string, through: 'proxy' | 'direct', body: (run: CaseRun, world: KubeWorld) => Promise<void>) => {
      const world = await kubeWorld(web)
      try {
        const kubeconfig = dir!.file('kubeconfig')
        await writeFile(kubeconfig, through === 'proxy' ? kubeconfigThrough(world.server, world.proxy) : world.server.kubeconfig(), {mode: 0o600})
        await chaos(name, {source: ['--kubeconfig', kubeconfig]}, (run) => body(run, world))
      } finally {
        await world.close()
      }
    }

    if (backend === BACKENDS[0]) {
      it('1. the API server hangs: status writes first, then every request, watch streams included', async () => {
        await kubeChaos('1. API server hangs', 'proxy', async (run, {proxy, createMapping}) => {
          proxy.hang(statusWrites)
          createMapping(probeMapping(1))
          await waitReachable(run.lab, CLIENT1, probeTarget(1), 'a Mapping created while status writes hang', 15_000)
          // Its status write is now held; the loop must not wait for it.
          const held = Date.now() + 10_000
          while (proxy.held() === 0 && Date.now() < held) await sleep(50)
          expect(proxy.held(), 'status writes held by the hung API server').to.be.greaterThan(0)
          createMapping(probeMapping(2))
          const later = await waitReachable(run.lab, CLIENT1, probeTarget(2), 'a later Mapping, while a status write hangs', 15_000)
          run.notes.push(`a Mapping created while a status write hung carried traffic after ${(later / 1000).toFixed(1)} s`)

          proxy.hang()
          createMapping(probeMapping(3))
          await sleep(OUTAGE_SECONDS * 1000)
          proxy.passThrough()
          run.faultEnd = Date.now()
          await run.readiness.waitReady(run.faultEnd, 120_000)
          const caughtUp = await waitReachable(run.lab, CLIENT1, probeTarget(3), 'the Mapping created during the hang, once it is lifted', 90_000)
          run.notes.push(`the Mapping created during the full hang carried traffic ${(caughtUp / 1000).toFixed(1)} s after /readyz was 200 again`)
        })
      })

      it(`2. the API server answers 500 to every request for ${OUTAGE_SECONDS} s`, async () => {
        await kubeChaos('2. API server 500s', 'proxy', async (run, {proxy, createMapping}) => {
          const outage = proxy.fail(500)
          // Open watches end as the failing server's would; every attempt to resume them gets a 500.
          proxy.cutConnections()
          await sleep(Math.min(2000, (OUTAGE_SECONDS * 1000) / 2))
          createMapping(probeMapping(1))
          await sleep(run.faultStart + OUTAGE_SECONDS * 1000 - Date.now())
          outage.lift()
          run.faultEnd = Date.now()
          await run.readiness.waitReady(run.faultEnd, 120_000)
          const caughtUp = await waitReachable(run.lab, CLIENT1, probeTarget(1), 'the Mapping created during the outage', 60_000)
          run.notes.push(`the Mapping created during the outage carried traffic ${(caughtUp / 1000).toFixed(1)} s after /readyz was 200 again`)
        })
      })

      it('3. the API server restarts onto a new resourceVersion history (410 Gone on re-watch)', async () => {
        await kubeChaos('3. API restart, new history', 'direct', async (run, {server, createMapping}) => {
          await server.stop()
          createMapping(probeMapping(1))
          await sleep(3000)
          await server.listenAgain({newHistory: true})
          run.faultEnd = Date.now()
          await run.readiness.waitReady(run.faultEnd, 120_000)
          await waitReachable(run.lab, CLIENT1, probeTarget(1), 'the Mapping created while the server was down', 60_000)
          // Only a watch resumed on the new history sees this one.
          createMapping(probeMapping(2))
          const live = await waitReachable(run.lab, CLIENT1, probeTarget(2), 'a Mapping created after the restart', 30_000)
          run.notes.push(`a Mapping created after the restart carried traffic after ${(live / 1000).toFixed(1)} s`)
        })
      })
    }

    it('4. the watch process is SIGKILLed mid-apply, three times, and restarted', async () => {
      // Nine Mappings come and go together: a payload worth interrupting, yet fewer than the 10
      // Mappings a removal must reach before the mass-removal guard holds it back.
      const churn = Array.from({length: 9}, (_, i): MappingFixture => ({name: `churn-${i}`, addresses: [EXT_B], serviceName: 'web', ports: [{port: 10_000 + i, servicePort: 80}]}))
      const lastChurn: MonitorTarget = {protocol: 'tcp', ip: EXT_B, port: 10_008}
      let churning = false
      const write = () => dir!.write({services: [web], mappings: [WEB, EDGE, ...(churning ? churn : [])]})
      await write()
      // Each step of an iptables apply gets interrupted in turn: the sets (written through the kept
      // ipset -exist - as it reads them, or ipset restore), then the rules. The nftables daemon
      // writes element changes through its kept nft -i, as it reads the transaction.
      const steps = backend.name === 'iptables' ? [/ipset (restore|-exist -)/, /iptables-restore/, /./] : [/nft -[fi]/]
      await chaos('4. SIGKILL mid-apply', {source: ['--from-file', dir!.path]}, async (run) => {
        for (let kill = 0; kill < 3; kill++) {
          const step = steps[kill % steps.length]!
          let interrupted: string | undefined
          for (let attempt = 0; !interrupted && attempt < 20; attempt++) {
            churning = !churning
            await write()
            interrupted = await run.daemon.killDuringApply(5000, step)
          }
          if (!interrupted) throw new Error(`no apply step matching ${step} of the watch daemon to interrupt in 20 attempts`)
          run.faultEnd = Date.now()
          run.notes.push(`killed during "${interrupted.replace(/^ip netns exec \S+ /, '')}"`)
          await run.daemon.restart()
          await run.readiness.waitReady(run.faultEnd, 60_000)
          // The restarted daemon finishes what the killed one left half done.
          if (churning) await waitReachable(run.lab, CLIENT1, lastChurn, 'the Mappings the killed daemon was adding', 20_000)
          else await waitGone(run.lab, lastChurn, 'the Mappings the killed daemon was removing', 20_000)
        }
      })
    })

    it('5. a manifest file is truncated in place, emptied, and restored (watch --from-file)', async () => {
      // Fourteen Mappings with the untouched ones last, so that a truncated file loses them first.
      const fillers = Array.from({length: 12}, (_, i): MappingFixture => ({name: `filler-${i}`, addresses: [EXT_B], serviceName: 'web', ports: [{port: 9100 + i, servicePort: 80}]}))
      await dir!.write({services: [web], mappings: [...fillers, WEB, EDGE]})
      const file = dir!.file('manifests.yaml')
      const full = await readFile(file, 'utf8')
      // Service, EndpointSlice and two Mappings: valid YAML, twelve Mappings fewer.
      const cut = Buffer.byteLength(full.split('---\n').slice(0, 4).join('---\n'))
      // A resync of 5 s puts the default --removal-delay (2 resyncs) well beyond the 3 s the file is short.
      await chaos('5. manifest truncated', {source: ['--from-file', dir!.path], resync: '5s'}, async (run) => {
        await truncate(file, cut)
        await sleep(2000)
        await truncate(file, 0)
        await sleep(1000)
        await writeFile(file, full)
        run.faultEnd = Date.now()
        expect(run.readiness.notReadyMs(run.faultStart, run.faultEnd), 'the removal held back shows in /readyz').to.be.greaterThan(0)
        await run.readiness.waitReady(run.faultEnd, 60_000)
        await waitReachable(run.lab, CLIENT1, {protocol: 'tcp', ip: EXT_B, port: 9111}, 'the last filler Mapping', 15_000)
      })
    })

    it('6. an interface loses its only address and gets it back', async () => {
      await dir!.write({services: [web], mappings: [WEB, EDGE]})
      await chaos('6. interface address lost', {source: ['--from-file', dir!.path], monitors: [WEB_MONITOR]}, async (run) => {
        await waitReachable(run.lab, CLIENT2, EDGE_TARGET, 'the Mapping on eth2 before', 15_000)
        await run.lab.exec('host', 'ip', ['addr', 'del', ETH2_CIDR, 'dev', 'eth2'])
        try {
          // Two resyncs (2 s each) see eth2 without an address.
          await sleep(5000)
        } finally {
          await run.lab.exec('host', 'ip', ['addr', 'add', ETH2_CIDR, 'dev', 'eth2'])
        }
        run.faultEnd = Date.now()
        await run.readiness.waitReady(run.faultEnd, 60_000)
        const back = await waitReachable(run.lab, CLIENT2, EDGE_TARGET, 'the Mapping on eth2 once its address is back', 20_000)
        run.notes.push(`the Mapping on eth2 carried traffic again ${(back / 1000).toFixed(1)} s after its address came back`)
      })
    })

    it('7. a host `smartnat sync`, from a PID namespace of its own, runs while the daemon applies', async function () {
      requireNeeds(this, 'the host sync in a PID namespace of its own', {tools: ['unshare']})
      let flip = false
      const write = () => dir!.write({services: [web], mappings: [WEB, EDGE, ...(flip ? [probeMapping(1)] : [])]})
      await write()
      const syncs: CliResult[] = []
      await chaos('7. host sync during apply', {source: ['--from-file', dir!.path]}, async (run) => {
        const errors = async () => metricValue((await httpGet(run.port, '/metrics')).body, 'smartnat_sync_errors_total')
        const errorsBefore = await errors()
        // The daemon applies every ~150 ms while the syncs run: a Mapping comes and goes.
        let churning = true
        const churn = (async () => {
          for (let i = 0; churning && i < 2000; i++) {
            flip = !flip
            await write()
            await sleep(150)
          }
        })()
        try {
          for (let i = 0; i < 3; i++) {
            // The DaemonSet's watch and a sync on the node's shell see each other's pids from different PID namespaces.
            syncs.push(await smartnat(syncArgs(backend.name, run.lab, dir!, '--lock-wait', '1'), {wrapper: ['unshare', '--pid', '--fork', '--kill-child'], timeoutMs: 60_000}))
          }
        } finally {
          churning = false
          await churn
        }
        run.faultEnd = Date.now()
        await run.readiness.waitReady(run.faultEnd, 60_000)
        run.notes.push(`host syncs exited ${syncs.map((s) => s.code).join(', ')}; the daemon's failed passes meanwhile: ${(await errors()) - errorsBefore}`)
        for (const sync of syncs) {
          expect(sync.code, `a host sync while the watch holds the lock must not apply, but it did:\n${sync.stderr}${sync.stdout}`).to.not.equal(0)
          expect(sync.stderr, 'the sync names who holds the lock').to.match(/held by/)
        }
      })
    })
  })
})

/** Waits (at most `ms`) until `target` no longer reaches a pod from client1. */
async function waitGone(lab: Lab, target: MonitorTarget, what: string, ms: number): Promise<void> {
  await eventually(`${what} to be gone (${target.ip}:${target.port})`, ms, async () => ((await reachesPod(lab, CLIENT1.from, CLIENT1.source, target)) ? undefined : true))
}

