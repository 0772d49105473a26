/**
 * The daemon's HTTP endpoint: /healthz (the loop turns), /readyz (syncing successfully), /metrics
 * (Prometheus), and the Go controller's /healthcheck (when the last pass succeeded).
 */
import {createServer, type IncomingMessage, type ServerResponse} from 'node:http'
import type {AddressInfo} from 'node:net'

import {parseListenAddress} from './listen-address.js'
import {METRICS_CONTENT_TYPE} from './metrics.js'


export interface Readiness {
  ready: boolean
  /** Why not ready; shown in the 503 body. */
  reason?: string
  /** The source's last error, shown beside the reason. */
  lastError?: string
}

export interface Liveness {
  alive: boolean
  /** Why not; shown in the 503 body. */
  reason?: string
}

export interface ObserveServerOptions {
  /** `HOST:PORT` or `[IPV6]:PORT`; port 0 picks a free port. */
  address: string
  readiness: () => Readiness
  /** Alive when absent: the process answering is all /healthz says then. */
  liveness?: () => Liveness
  metrics: () => string
  /** When the last pass succeeded (ms since the epoch), for /healthcheck; 404 there when absent. */
  lastSuccess?: () => number
}

export interface ObserveServer {
  /** Where it listens, with the port actually bound. */
  readonly host: string
  readonly port: number
  close(): Promise<void>
}

/** Starts listening; rejects with a clear error when the address cannot be bound. */
export async function startObserveServer(options: ObserveServerOptions): Promise<ObserveServer> {
  const {host, port} = parseListenAddress(options.address)
  const server = createServer((request, response) => respond(options, request, response))
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(new Error(`cannot listen on ${options.address}: ${error.message}`, {cause: error})))
    server.listen(port, host, () => resolve())
  })
  const bound = server.address() as AddressInfo
  return {
    host,
    port: bound.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve())
        // A scraper's keep-alive connection must not hold shutdown open.
        server.closeAllConnections()
      }),
  }
}

function respond(options: ObserveServerOptions, request: IncomingMessage, response: ServerResponse): void {
  if (request.method !== 'GET' && request.method !== 'HEAD') {
    return send(response, 405, 'method not allowed\n', {allow: 'GET, HEAD'})
  }
  const path = (request.url ?? '/').split('?')[0]
  switch (path) {
    case '/healthz': {
      const state = options.liveness?.() ?? {alive: true}
      return state.alive ? send(response, 200, 'ok\n') : send(response, 503, `unhealthy: ${state.reason ?? 'unknown'}\n`)
    }
    case '/readyz': {
      const state = options.readiness()
      const note = state.lastError ? `\nlast error: ${state.lastError}` : ''
      return state.ready ? send(response, 200, `ready${note}\n`) : send(response, 503, `not ready: ${state.reason ?? 'unknown'}${note}\n`)
    }
    case '/metrics':
      return send(response, 200, options.metrics(), {'content-type': METRICS_CONTENT_TYPE})
    case '/healthcheck':
      return options.lastSuccess ? send(response, 200, healthcheckBody(options.lastSuccess())) : notFound(options, response)
    default:
      return notFound(options, response)
  }
}

/**
 * What the Go controller's /healthcheck answered, byte for byte, so that checks written for it keep
 * working: `OK` and an RFC 3339 time in UTC to the second, no newline.
 */
export function healthcheckBody(ms: number): string {
  return `OK ${new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z')}`
}

function notFound(options: ObserveServerOptions, response: ServerResponse): void {
  send(response, 404, `not found: try /healthz, /readyz${options.lastSuccess ? ', /healthcheck' : ''} or /metrics\n`)
}

function send(response: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  response.writeHead(status, {'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store', ...headers})
  response.end(response.req.method === 'HEAD' ? undefined : body)
}
