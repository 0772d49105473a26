/**
 * `smartnat watch` where the Go controller ran: its SNCTRLR_* settings in the environment (no flag,
 * no config file) choose the listener, the log level and the resync, and its /healthcheck answers
 * there after a pass; with the Go controller's CRD (no status subresource) still installed, the daemon
 * refuses to start and says how to install smartnat's. Against the test API server, in the namespace lab.
 */
import {expect} from 'chai'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {eventually} from '../support/e2e.js'
import {freePort, httpGet} from '../support/http.js'
import {createLab, requireLab, type Lab} from '../support/lab.js'
import {killSmartnat, smartnat, startSmartnat, type RunningCli} from '../support/smartnat-cli.js'

describe('smartnat watch with the Go controller’s settings and CRD (root)', function () {
  this.timeout(60_000)
  let lab: Lab | undefined
  let server: ApiServer | undefined
  let dir: string | undefined
  let daemon: RunningCli | undefined

  before(async function () {
    requireLab(this)
    lab = await createLab()
    dir = await mkdtemp(join(tmpdir(), 'smartnat-go-settings-'))
  })

  afterEach(async () => {
    await killSmartnat(daemon)
    daemon = undefined
    await server?.stop()
    server = undefined
  })

  after(async () => {
    await lab?.destroy()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  const watchArgs = () => ['watch', '--kubeconfig', join(dir!, 'kubeconfig'), '--netns', lab!.ns('host'), '--lock-file', join(dir!, 'smartnat.lock'), '--config', '/dev/null']

  it('listens where SNCTRLR_MONITOR_* say, logs at debug, resyncs as SNCTRLR_AUTOREFRESH_PERIOD_SEC says, and answers /healthcheck with the time of its pass', async () => {
    server = await startApiServer({crds: ['crds/mapping.yaml']})
    await server.writeKubeconfig(join(dir!, 'kubeconfig'))
    const port = await freePort()
    let log = ''
    const env = {
      SNCTRLR_MONITOR_IP: '127.0.0.1',
      SNCTRLR_MONITOR_PORT: String(port),
      SNCTRLR_DEBUG_ENABLED: 'T',
      // One pass only (the first), so the time /healthcheck gives is that pass's.
      SNCTRLR_AUTOREFRESH_PERIOD_SEC: '3600',
      SNCTRLR_MAX_FINALIZE_WAIT_MINUTES: '60',
    }
    daemon = startSmartnat(watchArgs(), {timeoutMs: 50_000, env})
    daemon.child.stdout!.on('data', (chunk: Buffer) => (log += chunk.toString()))
    const lines = () => log.split('\n').filter(Boolean).map((line) => JSON.parse(line) as {time: string; level: string; msg: string; [k: string]: unknown})
    const pass = await eventually('a pass', 20_000, () => lines().find((l) => l.msg.startsWith('sync')))
    const reply = await httpGet(port, '/healthcheck')
    expect(reply.status).to.equal(200)
    const match = /^OK (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$/.exec(reply.body)
    expect(match, reply.body).to.not.equal(null)
    // Logged just after the pass ended: the time /healthcheck gives is that second, or the one before.
    const passEnded = Date.parse(pass.time)
    expect(Date.parse(match![1]!)).to.be.within(Math.floor(passEnded / 1000) * 1000 - 1000, passEnded)
    expect(lines().find((l) => l.msg === 'watching')).to.include({resync: '3600s', metricsAddr: `127.0.0.1:${port}`})
    // A Service no Mapping names: its pass is skipped, which only the debug level logs.
    server.api.create(server.types.services, 'default', {metadata: {name: 'other'}, spec: {clusterIP: '10.96.0.30', ports: [{port: 80}]}})
    await eventually('a debug line', 10_000, () => lines().find((l) => l.level === 'debug'))
    expect(lines().filter((l) => l.msg.startsWith('ignored: ')).map((l) => [l.level, l.msg])).to.deep.equal([
      ['warn', 'ignored: SNCTRLR_MAX_FINALIZE_WAIT_MINUTES is set but smartnat does not use it (see "Settings carried over from the Go controller" in docs/operations.md)'],
    ])
  })

  it('refuses to start with code 2 while the Go controller’s CRD, without a status subresource, is installed', async () => {
    const requests: string[] = []
    server = await startApiServer({crds: ['test/unit/fixtures/go-controller-crd.yaml'], log: (line) => requests.push(line)})
    await server.writeKubeconfig(join(dir!, 'kubeconfig'))
    server.api.create(server.types.mappings, 'default', {
      metadata: {name: 'web'},
      spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]},
    })
    const result = await smartnat([...watchArgs(), '--metrics-addr', '127.0.0.1:0'], {timeoutMs: 30_000})
    expect(result.code, result.stdout + result.stderr).to.equal(2)
    expect(result.stderr.replace(/\s+/g, ' ')).to.match(
      /the Mapping CRD installed in the cluster has no status subresource \(mappings\/status\), as the Go controller's had; smartnat writes Mapping status only there\. Install smartnat's CRD: kubectl apply -f \/\S+\/crds\/mapping\.yaml/,
    )
    expect(requests.filter((r) => r.includes('/status')), 'no status write was tried').to.deep.equal([])
  })
})
