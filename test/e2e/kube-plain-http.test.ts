/**
 * Through the real CLI, against the test API server over plain http: a kubeconfig whose
 * server is http:// (what `kubectl proxy` serves) and that does not say insecure-skip-tls-verify works
 * for `sync` and `watch` as it does for kubectl, with one warning that nothing is encrypted; and a
 * configuration that no retry can fix stops both commands at start with exit code 2 and a clear message.
 */
import {expect} from 'chai'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {stringify} from 'yaml'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {eventually, iptablesDump} from '../support/e2e.js'
import {httpGet} from '../support/http.js'
import {startKubeWatch, type KubeWatch} from '../support/kube-watch.js'
import {LAB_PLAN, createLab, requireLab, type Lab} from '../support/lab.js'
import {mappingManifest, serviceFromLab, serviceManifests, type ServiceFixture} from '../support/mappings.js'
import {smartnat} from '../support/smartnat-cli.js'

const EXT = LAB_PLAN.host.eth1.addresses[0]
const VIP = '198.19.100.10'
const WEB: ServiceFixture = {name: 'web', clusterIP: VIP, ports: [{protocol: 'tcp', port: 80, targetPort: 8080}], pods: ['198.19.200.11']}
const PLAIN_HTTP_WARNING = /the Kubernetes API server http:\/\/127\.0\.0\.1:\d+ is reached over plain http: requests, answers and credentials travel unencrypted/g

function seed(server: ApiServer, service: ServiceFixture): void {
  server.createAll([...serviceManifests(service), mappingManifest({name: 'web', addresses: [EXT], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]})])
}

describe('a kubeconfig with a plain http:// server', function () {
  this.timeout(60_000)
  let server: ApiServer
  let dir: string

  before(async function () {
    server = await startApiServer({crds: ['crds/mapping.yaml']})
    seed(server, WEB)
    dir = await mkdtemp(join(tmpdir(), 'smartnat-plain-http-'))
    await server.writeKubeconfig(join(dir, 'http'), {insecureSkipTlsVerify: false})
    await server.writeKubeconfig(join(dir, 'http-skip-verify'))
  })

  after(async () => {
    await server?.stop()
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  const dryRun = (kubeconfig: string) =>
    smartnat(['sync', '--kubeconfig', join(dir, kubeconfig), '--dry-run', '--assume-addresses', `${EXT}/24@eth1`, '--config', '/dev/null'])

  it('sync --dry-run reads the API over http without insecure-skip-tls-verify, prints the rules, and warns once', async () => {
    const result = await dryRun('http')
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.match(new RegExp(`default/web\\s+configured on ${EXT.replace(/\./g, '\\.')}`))
    expect(result.stdout).to.include(`--to-destination ${VIP}:80`)
    expect(result.stderr.replace(/\s*›\s*/g, ' ').match(PLAIN_HTTP_WARNING), result.stderr).to.have.length(1)
  })

  it('keeps working with a kubeconfig that does say insecure-skip-tls-verify', async () => {
    const result = await dryRun('http-skip-verify')
    expect(result.code, result.stderr).to.equal(0)
    expect(result.stdout).to.match(/default\/web\s+configured on/)
  })

  describe('configuration that no retry can fix: exit 2 at start, for sync and for watch', function () {
    const kubeconfig = (cluster: Record<string, unknown>, user: Record<string, unknown> = {}, contextUser = 'u') => stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name: 'c', cluster}],
      users: [{name: 'u', user}],
      contexts: [{name: 'x', context: {cluster: 'c', user: contextUser}}],
      'current-context': 'x',
    })
    const cases: {desc: string; text: () => string; args?: string[]; message: string}[] = [
      {desc: 'a kubeconfig that does not parse', text: () => 'clusters: [', message: 'kubeconfig '},
      {desc: 'an unknown --context', text: () => kubeconfig({server: server.url}), args: ['--context', 'nope'], message: 'kubeconfig: context "nope" not found (known contexts: x)'},
      {
        desc: 'a context naming an unknown cluster',
        text: () => stringify({clusters: [], contexts: [{name: 'x', context: {cluster: 'gone'}}], 'current-context': 'x'}),
        message: 'kubeconfig: context "x" refers to unknown cluster "gone"',
      },
      {desc: 'a context naming an unknown user', text: () => kubeconfig({server: server.url}, {}, 'ghost'), message: 'kubeconfig: context "x" refers to unknown user "ghost"'},
      {
        desc: 'an unreadable certificate-authority file',
        text: () => kubeconfig({server: server.url, 'certificate-authority': '/nonexistent/ca.crt'}),
        message: 'kubeconfig: cluster "c": cannot read certificate-authority /nonexistent/ca.crt',
      },
      {
        desc: 'an unreadable client key',
        text: () => kubeconfig({server: server.url}, {'client-certificate-data': 'Y2VydA==', 'client-key': '/nonexistent/client.key'}),
        message: 'kubeconfig: user "u": cannot read client-key /nonexistent/client.key',
      },
      {desc: 'a token file that does not exist', text: () => kubeconfig({server: server.url}, {'token-file': '/nonexistent/token'}), message: "open '/nonexistent/token'"},
    ]
    for (const command of ['sync', 'watch'] as const) {
      for (const {desc, text, args, message} of cases) {
        it(`${command}: ${desc}`, async () => {
          const path = join(dir, `broken-${command}`)
          await writeFile(path, text())
          // Refused before the host is touched: no root, no lock, no namespace needed.
          const result = await smartnat([command, '--kubeconfig', path, ...(args ?? []), '--config', '/dev/null', '--lock-file', join(dir, 'lock')])
          expect(result.code, `${result.stdout}${result.stderr}`).to.equal(2)
          expect(result.stderr.replace(/\s*›\s*/g, ' ')).to.include(message)
        })
      }
    }
  })

  describe('watch (root, namespace lab)', function () {
    let lab: Lab | undefined
    let labServer: ApiServer | undefined
    let daemon: KubeWatch | undefined

    before(async function () {
      requireLab(this)
      lab = await createLab()
      labServer = await startApiServer({crds: ['crds/mapping.yaml']})
      seed(labServer, serviceFromLab('web', lab.services(), VIP))
    })

    after(async () => {
      await daemon?.stop()
      await labServer?.stop()
      await lab?.destroy()
    })

    it('reaches ready over http without insecure-skip-tls-verify, programs the Mapping, and logs the warning once', async () => {
      daemon = await startKubeWatch(lab!, labServer!.kubeconfig({insecureSkipTlsVerify: false}), ['--config', '/dev/null'], {timeoutMs: 50_000})
      const port = daemon.port
      const ready = await daemon.withOutput(eventually('/readyz 200', 30_000, async () => {
        const reply = await httpGet(port, '/readyz').catch(() => undefined)
        return reply?.status === 200 ? reply : undefined
      }))
      expect(ready.body).to.equal('ready\n')
      expect(await iptablesDump(lab!)).to.include(`--to-destination ${VIP}:80`)
      expect(daemon.log.match(PLAIN_HTTP_WARNING), daemon.log).to.have.length(1)
      expect(daemon.log, 'no API errors').to.not.include('Kubernetes API error')
      daemon.cli.child.kill('SIGTERM')
      expect((await daemon.cli.done).code).to.equal(0)
    })
  })
})
