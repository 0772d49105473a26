import {expect} from 'chai'
import {request} from 'node:http'
import {createServer} from 'node:net'
import {METRICS_CONTENT_TYPE} from '../../src/lib/observe/metrics.js'
import {parseListenAddress} from '../../src/lib/observe/listen-address.js'
import {startObserveServer, type Liveness, type ObserveServer, type Readiness} from '../../src/lib/observe/server.js'

interface Reply {
  status: number
  type: string | undefined
  body: string
}

function get(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port, path, method, timeout: 2000}, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () => resolve({status: res.statusCode!, type: res.headers['content-type'], body}))
    })
    req.on('timeout', () => req.destroy(new Error(`${method} ${path}: no answer within 2 s`)))
    req.on('error', reject)
    req.end()
  })
}

describe('health and metrics endpoint', () => {
  let server: ObserveServer | undefined
  let readiness: Readiness
  let liveness: Liveness

  beforeEach(async () => {
    readiness = {ready: false, reason: 'source not synced yet'}
    liveness = {alive: true}
    server = await startObserveServer({address: '127.0.0.1:0', readiness: () => readiness, liveness: () => liveness, metrics: () => 'm_total 1\n'})
  })

  afterEach(async () => {
    await server?.close()
  })

  it('listens on the loopback address it was given, on a free port when asked for 0', () => {
    expect(server!.host).to.equal('127.0.0.1')
    expect(server!.port).to.be.greaterThan(0)
  })

  it('/healthz answers 200 whatever the readiness, and 503 with the reason when the loop is stuck', async () => {
    expect(await get(server!.port, '/healthz')).to.include({status: 200, body: 'ok\n'})
    liveness = {alive: false, reason: 'a sync pass has been running for 130s; the limit is 120s'}
    expect(await get(server!.port, '/healthz')).to.include({status: 503, body: 'unhealthy: a sync pass has been running for 130s; the limit is 120s\n'})
    expect(await get(server!.port, '/readyz'), 'readiness is its own').to.include({status: 503, body: 'not ready: source not synced yet\n'})
  })

  it('/healthcheck answers what the Go controller did: 200, OK and the time of the last successful pass to the second, no newline', async () => {
    const daemon = await startObserveServer({address: '127.0.0.1:0', readiness: () => readiness, metrics: () => '', lastSuccess: () => Date.parse('2026-12-03T05:19:43.512Z')})
    try {
      expect(await get(daemon.port, '/healthcheck')).to.deep.equal({status: 200, type: 'text/plain; charset=utf-8', body: 'OK 2026-12-03T05:19:43Z'})
      expect(await get(daemon.port, '/healthcheck', 'HEAD')).to.include({status: 200, body: ''})
      expect(await get(daemon.port, '/nope')).to.include({status: 404, body: 'not found: try /healthz, /readyz, /healthcheck or /metrics\n'})
    } finally {
      await daemon.close()
    }
    expect(await get(server!.port, '/healthcheck'), 'a server told of no passes has none').to.include({status: 404, body: 'not found: try /healthz, /readyz or /metrics\n'})
  })

  it('/healthz without a liveness check answers 200 while the process runs', async () => {
    const plain = await startObserveServer({address: '127.0.0.1:0', readiness: () => readiness, metrics: () => ''})
    try {
      expect(await get(plain.port, '/healthz')).to.include({status: 200, body: 'ok\n'})
    } finally {
      await plain.close()
    }
  })

  it('/readyz is 503 with the reason until ready, then 200, and shows a source error either way', async () => {
    expect(await get(server!.port, '/readyz')).to.include({status: 503, body: 'not ready: source not synced yet\n'})
    readiness = {ready: false, reason: 'last sync failed: ipset: exit 1', lastError: 'watch dropped'}
    expect(await get(server!.port, '/readyz')).to.include({status: 503, body: 'not ready: last sync failed: ipset: exit 1\nlast error: watch dropped\n'})
    readiness = {ready: true}
    expect(await get(server!.port, '/readyz')).to.include({status: 200, body: 'ready\n'})
    readiness = {ready: true, lastError: 'm.yaml:3: invalid YAML'}
    expect(await get(server!.port, '/readyz')).to.include({status: 200, body: 'ready\nlast error: m.yaml:3: invalid YAML\n'})
  })

  it('/metrics serves the exposition with its content type, query strings ignored', async () => {
    expect(await get(server!.port, '/metrics?x=1')).to.deep.equal({status: 200, type: METRICS_CONTENT_TYPE, body: 'm_total 1\n'})
  })

  it('HEAD gets headers only; other methods and paths are refused', async () => {
    expect(await get(server!.port, '/metrics', 'HEAD')).to.deep.equal({status: 200, type: METRICS_CONTENT_TYPE, body: ''})
    expect(await get(server!.port, '/metrics', 'POST')).to.include({status: 405})
    expect(await get(server!.port, '/')).to.include({status: 404, body: 'not found: try /healthz, /readyz or /metrics\n'})
  })

  it('close() ends open keep-alive connections too', async () => {
    const port = server!.port
    await get(port, '/healthz')
    const closing = server!.close()
    server = undefined
    // An open keep-alive connection would hold close() past the test's timeout.
    await closing
    let refused = false
    await get(port, '/healthz').catch(() => (refused = true))
    expect(refused).to.equal(true)
  })

  it('says which address it cannot bind', async () => {
    const blocker = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve))
    const port = (blocker.address() as {port: number}).port
    try {
      let message = ''
      await startObserveServer({address: `127.0.0.1:${port}`, readiness: () => readiness, metrics: () => ''}).catch((e: Error) => (message = e.message))
      expect(message).to.match(new RegExp(`^cannot listen on 127\\.0\\.0\\.1:${port}: listen EADDRINUSE`))
    } finally {
      blocker.close()
    }
  })
})

describe('listen addresses', () => {
  const table: {input: string; want: {host: string; port: number} | string}[] = [
    {input: '127.0.0.1:9469', want: {host: '127.0.0.1', port: 9469}},
    {input: '0.0.0.0:1', want: {host: '0.0.0.0', port: 1}},
    {input: 'localhost:8080', want: {host: 'localhost', port: 8080}},
    {input: '[::1]:9469', want: {host: '::1', port: 9469}},
    {input: ':9469', want: 'invalid'},
    {input: '127.0.0.1', want: 'invalid'},
    {input: '127.0.0.1:65536', want: 'invalid'},
    {input: '::1:9469', want: 'invalid'},
  ]
  for (const {input, want} of table) {
    it(`${input} -> ${typeof want === 'string' ? want : `${want.host} ${want.port}`}`, () => {
      if (typeof want !== 'string') return void expect(parseListenAddress(input)).to.deep.equal(want)
      expect(() => parseListenAddress(input)).to.throw(
        `listen address "${input}" must be HOST:PORT with a port 0..65535, e.g. 127.0.0.1:9469 or [::1]:9469`,
      )
    })
  }
})
