/**
 * Every request to the Kubernetes API has a deadline. Against a raw TCP
 * server that accepts connections and never answers (or answers only part of the way), each kind of
 * request — a list page, opening a watch, an open watch that outlives its deadline, a status merge-patch
 * or read, an Event creation — fails within its timeout with an error naming the request; the source
 * reports it in health(); no connection is left open; and every failed request is counted.
 */
import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {stringify} from 'yaml'
import type {MappingResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {SmartnatMetrics} from '../../src/lib/observe/metrics.js'
import type {MappingVerdict} from '../../src/lib/plan/model.js'
import type {ApiOptions} from '../../src/lib/source/kube/request.js'
import {KubeSource, listSnapshot} from '../../src/lib/source/kube/source.js'
import {kubeEventApi, kubeMappingStatusApi} from '../../src/lib/source/kube/writers.js'
import {recordEvents} from '../../src/lib/sync/events.js'
import {writeStatuses} from '../../src/lib/sync/status.js'
import {eventually} from '../support/e2e.js'
import {GatedDelay} from '../support/gated-delay.js'
import {httpGet} from '../support/http.js'
import {startKubeWatch, type KubeWatch} from '../support/kube-watch.js'
import {createLab, requireLab, type Lab} from '../support/lab.js'
import {jsonResponse, SILENT_WATCH, startRawHttpServer, type RawAnswer, type RawHttpServer} from '../support/raw-http.js'
import {smartnat} from '../support/smartnat-cli.js'

const TIMEOUT_MS = 100
const KINDS = [
  {kind: 'Mapping', path: '/apis/smartnat.aureacentral.com/v1alpha1/mappings'},
  {kind: 'Service', path: '/api/v1/services'},
  {kind: 'EndpointSlice', path: '/apis/discovery.k8s.io/v1/endpointslices'},
  {kind: 'AddressPool', path: '/apis/smartnat.aureacentral.com/v1alpha1/addresspools'},
  {kind: 'Namespace', path: '/api/v1/namespaces'},
] as const

const never: RawAnswer = () => undefined
const emptyList = (resourceVersion = '5') => jsonResponse(200, {kind: 'List', apiVersion: 'v1', metadata: {resourceVersion}, items: []})
/** Lists answer at once; watches get `watch`. */
const listsThen = (watch: ReturnType<RawAnswer>): RawAnswer => ({target}) => (target.includes('watch=true') ? watch : emptyList())
const internalError = jsonResponse(500, {kind: 'Status', apiVersion: 'v1', status: 'Failure', message: 'etcdserver: request timed out', reason: 'InternalError', code: 500})

function kubeConfigFor(url: string): KubeConfig {
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{name: 'raw', server: url, skipTLSVerify: true}],
    users: [{name: 'raw'}],
    contexts: [{name: 'raw', cluster: 'raw', user: 'raw'}],
    currentContext: 'raw',
  })
  return kc
}

describe('every Kubernetes API request has a deadline', function () {
  let raw: RawHttpServer | undefined
  let source: KubeSource | undefined
  /** `kind verb code` of each failed request, as the metrics are told. */
  let failures: string[]
  let api: ApiOptions

  beforeEach(() => {
    failures = []
    api = {timeoutMs: TIMEOUT_MS, onFailure: (request, code) => failures.push(`${request.kind} ${request.verb} ${code}`)}
  })

  afterEach(async () => {
    await source?.stop()
    source = undefined
    await raw?.close()
    raw = undefined
  })

  async function serve(answer: RawAnswer): Promise<KubeConfig> {
    raw = await startRawHttpServer(answer)
    return kubeConfigFor(raw.url)
  }

  const noConnectionLeft = () => eventually('every connection closed by the client', 5000, () => (raw!.openConnections() === 0 ? true : undefined))

  it('list: a server that never answers fails the list of each kind within the timeout, naming it, and closes the connection', async () => {
    const kc = await serve(never)
    const error = await listSnapshot(kc, 500, api).then(() => undefined, (e: Error) => e)
    expect(error?.message).to.match(/^listing (Mapping|Service|EndpointSlice|AddressPool|Namespace)s from \/\S+: no response within 100ms$/)
    await eventually('every kind to fail', 5000, () => (failures.length === KINDS.length ? true : undefined))
    expect(failures.sort()).to.deep.equal(['AddressPool list timeout', 'EndpointSlice list timeout', 'Mapping list timeout', 'Namespace list timeout', 'Service list timeout'])
    await noConnectionLeft()
  })

  it('list: each page has its own deadline — a server that answers the first page and never the next fails the list', async () => {
    const kc = await serve(({target}) => {
      if (target.includes('continue=')) return undefined
      return jsonResponse(200, {kind: 'List', apiVersion: 'v1', metadata: {resourceVersion: '5', continue: 'page-2'}, items: [{metadata: {name: 'a', namespace: 'default'}}]})
    })
    const error = await listSnapshot(kc, 1, api).then(() => undefined, (e: Error) => e)
    expect(error?.message).to.match(/^listing (Mapping|Service|EndpointSlice|AddressPool|Namespace)s from \/\S+: no response within 100ms$/)
    for (const {path} of KINDS) expect(raw!.requests.filter((r) => r.startsWith(`GET ${path}?`) && r.includes('continue=page-2')), path).to.have.length(1)
    await eventually('every kind to fail', 5000, () => (failures.length === KINDS.length ? true : undefined))
    await noConnectionLeft()
  })

  it('watch: response headers that never come end the watch; health() names the request; stop() leaves nothing open', async () => {
    const kc = await serve(listsThen(undefined))
    const gate = new GatedDelay()
    source = new KubeSource(kc, {delay: gate.delay, backoff: {random: () => 0}, api})
    await source.start()
    await eventually('every kind waiting out its failed watch', 5000, () => (gate.pending === KINDS.length ? true : undefined))
    const health = source.health()
    expect(health).to.include({synced: true, healthy: false})
    for (const {kind, path} of KINDS) expect(health.kinds[kind].lastError).to.equal(`watch ${path}: no response within 100ms`)
    expect(failures.sort()).to.deep.equal(['AddressPool watch timeout', 'EndpointSlice watch timeout', 'Mapping watch timeout', 'Namespace watch timeout', 'Service watch timeout'])
    await source.stop()
    await noConnectionLeft()
  })

  it('watch: an open watch that stays open past its deadline ends, is reported, and resumes from its resourceVersion without a relist', async () => {
    const kc = await serve(listsThen(SILENT_WATCH))
    const gate = new GatedDelay()
    // The server is asked to end each watch after 1 s; the client gives up 1 s + the request timeout after it opened.
    source = new KubeSource(kc, {delay: gate.delay, backoff: {random: () => 0}, api, watchTimeoutSeconds: 1})
    await source.start()
    await eventually('every kind waiting out its stalled watch', 10_000, () => (gate.pending === KINDS.length ? true : undefined))
    for (const {kind, path} of KINDS) {
      expect(source.health().kinds[kind].lastError).to.equal(`watch ${path}: still open after 1.1s, longer than the server was asked to keep it`)
    }
    expect(failures.sort()).to.deep.equal(['AddressPool watch timeout', 'EndpointSlice watch timeout', 'Mapping watch timeout', 'Namespace watch timeout', 'Service watch timeout'])
    const watches = () => raw!.requests.filter((r) => r.includes('watch=true'))
    expect(watches()).to.have.length(KINDS.length)
    gate.releaseAll()
    await eventually('the watches to resume', 5000, () => (watches().length === 2 * KINDS.length ? true : undefined))
    expect(raw!.requests.filter((r) => !r.includes('watch=true')), 'no relist').to.have.length(KINDS.length)
    for (const {path} of KINDS) {
      expect(watches().filter((r) => r.startsWith(`GET ${path}?watch=true&resourceVersion=5&`)), path).to.have.length(2)
    }
    expect(watches().every((r) => r.includes('timeoutSeconds=1'))).to.equal(true)
  })

  it('status: a merge-patch or a read that gets no answer fails within the timeout, per Mapping, naming it', async () => {
    const kc = await serve(never)
    const statusApi = kubeMappingStatusApi(kc, api)
    const mapping: MappingResource = {metadata: {namespace: 'default', name: 'web', generation: 1, uid: 'u-1', resourceVersion: '7'}, spec: {}}
    const verdict: MappingVerdict = {
      namespace: 'default', name: 'web', generation: 1, valid: true, invalid: 'no', serviceVIP: '10.96.0.20' as Ipv4,
      configuredAddresses: {'198.18.0.10': {podIPs: []}}, notLocalAddresses: [],
    }
    const host = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}]}]}
    const result = await writeStatuses(statusApi, [mapping], [verdict], host, new Date())
    expect(result).to.include({patched: 0, failed: 1})
    expect(result.errors.map((e) => e.message)).to.deep.equal(['mapping default/web: writing status: no response within 100ms'])
    const read = await statusApi.get('default', 'web').then(() => undefined, (e: Error) => e)
    expect(read?.message).to.equal('no response within 100ms')
    expect(failures).to.deep.equal(['Mapping patch timeout', 'Mapping get timeout'])
    await noConnectionLeft()
  })

  it('events: an Event creation that gets no answer fails within the timeout, naming the Mapping and the Event', async () => {
    const kc = await serve(never)
    const mapping: MappingResource = {metadata: {namespace: 'default', name: 'web', uid: 'u-1', resourceVersion: '8'}, spec: {}}
    const next = {invalid: 'no', configuredAddresses: {'198.18.0.10': {podIPs: []}}}
    const change = {namespace: 'default', name: 'web', mapping, previous: undefined, next, own: new Set(['198.18.0.10'])}
    const result = await recordEvents(kubeEventApi(kc, api), [change], new Set(['198.18.0.10']), 'edge-1', new Date())
    expect(result.created).to.equal(0)
    expect(result.errors.map((e) => e.message)).to.deep.equal(['mapping default/web: recording event Configured: no response within 100ms'])
    expect(failures).to.deep.equal(['Event create timeout'])
    await noConnectionLeft()
  })

  it('watch: a refused watch is reported with the server\'s own message and counted with its status', async () => {
    const forbidden = jsonResponse(403, {kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Forbidden', code: 403, message: 'cannot watch here'})
    const kc = await serve(listsThen(forbidden))
    const gate = new GatedDelay()
    source = new KubeSource(kc, {delay: gate.delay, backoff: {random: () => 0}, api})
    await source.start()
    await eventually('every kind waiting out its refused watch', 5000, () => (gate.pending === KINDS.length ? true : undefined))
    expect(source.health().kinds.Service.lastError).to.equal('watch /api/v1/services: HTTP 403: cannot watch here')
    expect(failures.sort()).to.deep.equal(['AddressPool watch 403', 'EndpointSlice watch 403', 'Mapping watch 403', 'Namespace watch 403', 'Service watch 403'])
  })

  describe('smartnat_api_errors_total counts every failed request, not only new error messages', function () {
    const cases = [
      {what: 'no answer', answer: never, code: 'timeout'},
      {what: 'the same HTTP 500 each time', answer: (() => internalError) as RawAnswer, code: '500'},
    ]
    for (const {what, answer, code} of cases) {
      it(`5 failed relists of each kind (${what}) count 5 for each kind`, async () => {
        const kc = await serve(answer)
        const metrics = new SmartnatMetrics()
        const gate = new GatedDelay()
        source = new KubeSource(kc, {delay: gate.delay, backoff: {random: () => 0}, api: {timeoutMs: TIMEOUT_MS, onFailure: (r, c) => metrics.apiError({...r, code: c})}})
        void source.start()
        for (let round = 1; round <= 5; round++) {
          await eventually(`round ${round}: every kind waiting`, 5000, () => (gate.pending === KINDS.length ? true : undefined))
          if (round < 5) gate.releaseAll()
        }
        for (const {kind} of KINDS) expect(metrics.apiErrors.get({kind, verb: 'list', code}), kind).to.equal(5)
        expect(source.health().kinds.Service.lastError).to.match(code === 'timeout' ? /no response within 100ms$/ : /HTTP 500: etcdserver: request timed out$/)
      })
    }
  })

  describe('through the CLI', function () {
    this.timeout(60_000)
    let dir: string

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'smartnat-api-timeouts-'))
    })

    after(async () => {
      await rm(dir, {recursive: true, force: true})
    })

    const kubeconfig = (url: string) => stringify({
      clusters: [{name: 'raw', cluster: {server: url}}],
      users: [{name: 'raw', user: {}}],
      contexts: [{name: 'raw', context: {cluster: 'raw', user: 'raw'}}],
      'current-context': 'raw',
    })
    async function kubeconfigFile(url: string): Promise<string> {
      const path = join(dir, 'kubeconfig')
      await writeFile(path, kubeconfig(url))
      return path
    }

    it('sync --api-timeout 300ms against a server that never answers fails within the timeout instead of hanging', async () => {
      await serve(never)
      const result = await smartnat(
        ['sync', '--kubeconfig', await kubeconfigFile(raw!.url), '--dry-run', '--assume-addresses', '198.18.0.10', '--api-timeout', '300ms', '--config', '/dev/null'],
        {timeoutMs: 20_000},
      )
      expect(result.code, `killed at the deadline: ${result.stderr}`).to.equal(1)
      expect(result.stderr).to.match(/listing (Mapping|Service|EndpointSlice)s from \/\S+: no response within 300ms/)
    })

    it('sync: an --api-timeout that is not a duration is refused with exit 2', async () => {
      const result = await smartnat(['sync', '--kubeconfig', '/nonexistent', '--api-timeout', '30x', '--config', '/dev/null'])
      expect(result.code).to.equal(2)
      expect(result.stderr).to.include('--api-timeout "30x" must be a positive duration such as 500ms, 30s, 5m, 1h or a number of seconds')
    })

    describe('watch (root, namespace lab)', function () {
      let lab: Lab | undefined
      let daemon: KubeWatch | undefined

      before(async function () {
        requireLab(this)
        lab = await createLab()
      })

      after(async () => {
        await daemon?.stop()
        await lab?.destroy()
      })

      it('counts each failed list in smartnat_api_errors_total by kind, verb and code, as many as the server refused', async () => {
        await serve(() => internalError)
        daemon = await startKubeWatch(lab!, kubeconfig(raw!.url), ['--config', '/dev/null'], {timeoutMs: 50_000})
        const {port} = daemon
        const refused = () => raw!.requests.filter((r) => r.startsWith('GET /api/v1/services?limit=')).length
        const counted = async () => {
          const line = (await httpGet(port, '/metrics')).body.split('\n').find((l) => l.startsWith('smartnat_api_errors_total{kind="Service",verb="list",code="500"} '))
          return line === undefined ? 0 : Number(line.split(' ')[1])
        }
        // Between two relists (they back off from 0.5 s) the daemon has counted every answer the server sent.
        await eventually('5 refused lists, each counted', 40_000, async () => {
          const n = await counted()
          return n >= 5 && n === refused() ? n : undefined
        })
        daemon.cli.child.kill('SIGTERM')
        expect((await daemon.cli.done).code).to.equal(0)
      })
    })
  })
})
