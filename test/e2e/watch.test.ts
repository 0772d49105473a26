/**
 * `smartnat watch --from-file DIR --netns HOST --backend NAME` as a daemon against the namespace lab,
 * for each backend: it becomes ready, follows manifest changes, repairs a hand-flushed chain on its
 * periodic resync, serves its metrics, keeps a cron sync out while it holds the lock, and leaves the
 * rules in place on SIGTERM.
 */
import {expect} from 'chai'
import {inspectLock} from '../../src/lib/host/lock.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS} from '../support/backends.js'
import {commandArgs, eventually, syncArgs} from '../support/e2e.js'
import {freePort, httpGet, metricValue} from '../support/http.js'
import {LAB_PLAN, type EchoResult, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture, type ServiceFixture} from '../support/mappings.js'
import {smartnat, startSmartnat, type RunningCli, killSmartnat} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const WEB_PODS = ['198.19.200.11', '198.19.200.12']
const EXT_A = LAB_PLAN.host.eth1.addresses[0]
const CLIENT = LAB_PLAN.client1.addresses[0]
const WEB: MappingFixture = {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]}
const WEB_UDP: MappingFixture = {name: 'web-dns', addresses: [EXT_A], serviceName: 'web', ports: [{port: 5300, protocol: 'udp', servicePort: 53}]}

const podOf = (r: EchoResult) => (r.ok ? r.fields.pod : r.error)

for (const backend of BACKENDS) describe(`smartnat watch in the namespace lab (root, ${backend.name})`, function () {
  this.timeout(120_000)
  let lab: Lab | undefined
  let dir: ManifestDir | undefined
  let web: ServiceFixture
  let daemon: RunningCli | undefined
  let port: number
  let startedAt: number

  const reaches = async (protocol: 'tcp' | 'udp', externalPort: number) => {
    const [result] = await lab!.requests(protocol, 'client1', CLIENT, EXT_A, externalPort, 1, {timeoutMs: 500})
    return result!.ok && WEB_PODS.includes(result!.fields.pod!) ? result!.fields.pod : undefined
  }
  const daemonOutput = async () => (daemon ? `\n--- watch stdout ---\n${await Promise.race([daemon.done.then((r) => r.stdout + r.stderr), Promise.resolve('(still running)')])}` : '')

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    web = serviceFromLab('web', lab.services(), VIP)
    await dir.write({services: [web], mappings: [WEB]})
    port = await freePort()
    startedAt = Date.now() / 1000
    daemon = startSmartnat(commandArgs('watch', backend.name, lab, dir, '--metrics-addr', `127.0.0.1:${port}`, '--resync', '2s', '--log-level', 'debug'), {
      timeoutMs: 110_000,
    })
  })

  after(async () => {
    // However the tests ended, the daemon must not outlive them.
    await killSmartnat(daemon)
    await removeBackendLab(lab, dir)
  })

  it('is alive at once and ready after its first sync', async () => {
    await eventually('/healthz', 20_000, async () => ((await httpGet(port, '/healthz')).status === 200 ? true : undefined)).catch(async (error: Error) => {
      throw new Error(`${error.message}${await daemonOutput()}`)
    })
    const ready = await eventually('/readyz 200', 20_000, async () => {
      const reply = await httpGet(port, '/readyz')
      return reply.status === 200 ? reply : undefined
    })
    expect(ready.body).to.equal('ready\n')
  })

  it('programs the Mapping: client1 -> external address:port reaches a pod', async () => {
    expect(await reaches('tcp', 8080)).to.be.oneOf(WEB_PODS)
  })

  it('holds the lock: a cron sync meanwhile fails and names the watch', async () => {
    const cron = await smartnat(syncArgs(backend.name, lab!, dir!, '--lock-wait', '0'))
    expect(cron.code).to.not.equal(0)
    expect(cron.stderr).to.match(/smartnat\.lock is held by smartnat watch \(pid \d+, since /)
  })

  it('a new Mapping in the manifests works within seconds', async () => {
    // Not mapped yet: the host itself answers that nothing listens there.
    expect(podOf((await lab!.requests('udp', 'client1', CLIENT, EXT_A, 5300, 1, {timeoutMs: 500}))[0]!)).to.equal('refused')
    const written = Date.now()
    await dir!.write({services: [web], mappings: [WEB, WEB_UDP]})
    await eventually('udp/5300 to reach a pod', 5000, () => reaches('udp', 5300))
    expect(Date.now() - written).to.be.below(5000)
    expect(await reaches('tcp', 8080)).to.be.oneOf(WEB_PODS)
  })

  it('a broken manifest keeps the last good rules and makes /readyz 503 until it is fixed', async () => {
    await dir!.write({services: [web], mappings: [WEB, WEB_UDP], extraYaml: 'kind: Mapping\n  broken: [yaml\n'})
    const reply = await eventually('the error in /readyz', 5000, async () => {
      const r = await httpGet(port, '/readyz')
      return r.body.includes('last error:') ? r : undefined
    })
    expect(reply.status).to.equal(503)
    expect(reply.body).to.match(/^not ready: source failing; the rules of the last sync stay in place\nlast error: .*manifests\.yaml:\d+: invalid YAML/)
    expect(await reaches('tcp', 8080)).to.be.oneOf(WEB_PODS)
    expect(await reaches('udp', 5300)).to.be.oneOf(WEB_PODS)
    await dir!.write({services: [web], mappings: [WEB, WEB_UDP]})
    await eventually('/readyz without the error', 5000, async () => ((await httpGet(port, '/readyz')).body === 'ready\n' ? true : undefined))
  })

  it('repairs a chain flushed by hand on its next resync', async () => {
    await backend.flushDnatChain(lab!)
    expect(await backend.dnatChainRules(lab!)).to.equal(0)
    await eventually('the chain to be refilled and traffic to flow', 8000, async () => ((await backend.dnatChainRules(lab!)) > 0 ? reaches('tcp', 8080) : undefined))
  })

  it('/metrics shows the syncs, the Mappings, the rules and the kernel writes', async () => {
    // Passes so far: the first, the new Mapping, the repaired manifest, the repair; resyncs add more every 2 s.
    const {status, body} = await eventually('four syncs in /metrics', 10_000, async () => {
      const reply = await httpGet(port, '/metrics')
      return metricValue(reply.body, 'smartnat_sync_duration_seconds_count') >= 4 ? reply : undefined
    })
    expect(status).to.equal(200)
    expect(metricValue(body, 'smartnat_sync_duration_seconds_bucket{le="+Inf"}')).to.equal(metricValue(body, 'smartnat_sync_duration_seconds_count'))
    expect(metricValue(body, 'smartnat_last_successful_sync_timestamp_seconds')).to.be.within(startedAt, Date.now() / 1000)
    expect(metricValue(body, 'smartnat_mappings{state="configured"}')).to.equal(2)
    expect(metricValue(body, 'smartnat_mappings{state="invalid"}')).to.equal(0)
    expect(metricValue(body, 'smartnat_rules_programmed')).to.be.at.least(10)
    expect(metricValue(body, 'smartnat_kernel_writes_total{kind="rules"}')).to.be.greaterThan(0)
    expect(metricValue(body, 'smartnat_sync_errors_total')).to.equal(0)
    expect(metricValue(body, 'smartnat_api_errors_total')).to.equal(0)
  })

  it('SIGTERM: exits 0, leaves the rules working, releases the lock, and logged JSON lines throughout', async () => {
    // A resync that finds nothing to do: one more sync, and not one more kernel write.
    const metrics = async () => (await httpGet(port, '/metrics')).body
    const before = await metrics()
    const syncs = (text: string) => metricValue(text, 'smartnat_sync_duration_seconds_count')
    const writes = (text: string) => metricValue(text, 'smartnat_kernel_writes_total{kind="rules"}')
    const after = await eventually('a resync without kernel writes', 10_000, async () => {
      const now = await metrics()
      return syncs(now) > syncs(before) ? now : undefined
    })
    expect(writes(after)).to.equal(writes(before))
    daemon!.child.kill('SIGTERM')
    const result = await Promise.race([daemon!.done, new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 15_000))])
    expect(result, 'exited within 15 s of SIGTERM').to.not.equal(undefined)
    expect(result!.code, result!.stderr).to.equal(0)
    expect(await reaches('tcp', 8080)).to.be.oneOf(WEB_PODS)
    expect(await reaches('udp', 5300)).to.be.oneOf(WEB_PODS)
    expect(await inspectLock(dir!.file('smartnat.lock')), 'the lock let go of, its holder cleared').to.deep.equal({held: false, holder: undefined})

    const lines = result!.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l) as {time: string; level: string; msg: string})
    for (const line of lines) {
      expect(line.time).to.match(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/)
      expect(['debug', 'info', 'warn', 'error']).to.include(line.level)
    }
    const messages = lines.map((l) => l.msg)
    expect(messages).to.include.members(['watching', 'sync applied changes', 'stopped; rules left in place'])
    expect(messages.filter((m) => m === 'sync: kernel already up to date').length, 'resyncs that found nothing to do').to.be.at.least(1)
  })

  it('with --flush-on-exit, SIGTERM removes everything smartnat installed', async () => {
    const flushPort = await freePort()
    const run = startSmartnat(
      commandArgs('watch', backend.name, lab!, dir!, '--metrics-addr', `127.0.0.1:${flushPort}`, '--flush-on-exit'),
      {timeoutMs: 60_000},
    )
    try {
      await eventually('/readyz 200', 20_000, async () => ((await httpGet(flushPort, '/readyz')).status === 200 ? true : undefined))
      run.child.kill('SIGTERM')
      const result = await run.done
      expect(result.code, result.stderr).to.equal(0)
    } finally {
      if (run.child.exitCode === null && run.child.signalCode === null) run.child.kill('SIGKILL')
      await run.done
    }
    expect(await backend.installed(lab!)).to.equal(false)
    expect(podOf((await lab!.requests('tcp', 'client1', CLIENT, EXT_A, 8080, 1, {timeoutMs: 500}))[0]!)).to.equal('refused')
  })
})
