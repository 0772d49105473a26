/** Talking to a running daemon's HTTP endpoints (/healthz, /readyz, /metrics) from the tests. */
import {request} from 'node:http'
import {createServer} from 'node:net'

/** GET `path` on 127.0.0.1:`port`, failing after 2 s without an answer. */
export function httpGet(port: number, path: string): Promise<{status: number; body: string}> {
  return new Promise((resolve, reject) => {
    const req = request({host: '127.0.0.1', port, path, timeout: 2000}, (res) => {
      let body = ''
      res.on('data', (chunk: Buffer) => (body += chunk.toString()))
      res.on('end', () => resolve({status: res.statusCode!, body}))
    })
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: no answer within 2 s`)))
    req.on('error', reject)
    req.end()
  })
}

/** A TCP port on 127.0.0.1 that nothing listened on a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const {port} = server.address() as {port: number}
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** The value of one sample (`name{labels}`) in a Prometheus text exposition. */
export function metricValue(text: string, sample: string): number {
  const line = text.split('\n').find((l) => l.startsWith(`${sample} `))
  if (!line) throw new Error(`no sample ${sample} in /metrics`)
  return Number(line.slice(sample.length + 1))
}
