/**
 * An HTTP proxy in front of the test API server whose faults a test switches at run time: requests
 * pass through (watch streams included, chunk by chunk), hang (accepted, never answered), or fail
 * with an HTTP status and a Kubernetes Status body; every open connection can be cut at once.
 *
 * A hang is a server that stalls, not one that died: requests it catches are held, responses it
 * catches mid-stream (an open watch) stop flowing, and when it is lifted both go on as if the
 * server had only been slow. A server that died is `cutConnections()`. Listens on 127.0.0.1 only.
 */
import {createServer, request as upstreamRequest, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders, type ServerResponse} from 'node:http'
import type {AddressInfo, Socket} from 'node:net'
import type {ApiServer} from './apiserver/index.js'
import type {StatusBody} from './apiserver/errors.js'

/** What a fault sees of a request. */
export interface ProxiedRequest {
  method: string
  /** The path without the query, e.g. `/apis/smartnat.aureacentral.com/v1alpha1/namespaces/default/mappings/web/status`. */
  path: string
  query: URLSearchParams
  /** A list that asked to watch (`?watch=true`). */
  watch: boolean
}

export type RequestMatch = (request: ProxiedRequest) => boolean

export const everyRequest: RequestMatch = () => true

/** Status writes (PATCH or PUT of any object's status subresource). */
export const statusWrites: RequestMatch = (r) => (r.method === 'PATCH' || r.method === 'PUT') && r.path.endsWith('/status')

/** A fault in force; lifting it releases what it holds to whichever faults remain. */
export interface Fault {
  lift(): void
}

export interface FaultProxy {
  readonly url: string
  readonly port: number
  /** Holds matching requests unanswered and stops matching responses mid-stream, until lifted. */
  hang(match?: RequestMatch): Fault
  /** Answers matching requests with `code` and a Kubernetes Status body, without asking the server. */
  fail(code: number, match?: RequestMatch, message?: string): Fault
  /** Lifts every fault. */
  passThrough(): void
  /** Ends every open connection, held requests and watch streams included, as a server that died would. */
  cutConnections(): void
  /** Requests held unanswered right now. */
  held(): number
  /** Requests so far, by what happened to them (a held request that was released counts twice), and chunks a hang withheld mid-stream. */
  readonly counts: {forwarded: number; held: number; failed: number; withheld: number}
  /** Cuts every connection and stops listening. */
  close(): Promise<void>
}

type Action = {kind: 'hang'} | {kind: 'fail'; body: StatusBody}

interface Rule {
  match: RequestMatch
  action: Action
}

/** One request and its answer, from arrival to the end of the response. */
interface Exchange {
  request: ProxiedRequest
  req: IncomingMessage
  res: ServerResponse
  body: Buffer
  state: 'held' | 'forwarded' | 'answered'
  upstream?: ClientRequest
  /** Set while a hang holds the response mid-stream. */
  frozen: boolean
  resume?: () => void
}

/** Reasons the real API server gives for these codes. */
const REASONS: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  409: 'Conflict',
  410: 'Expired',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
}

/** Headers that describe one hop's connection and must not be passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade'])

/** Starts a proxy to the server listening on 127.0.0.1:`upstreamPort`, passing everything through. */
export async function startFaultProxy(upstreamPort: number): Promise<FaultProxy> {
  const rules: Rule[] = []
  const exchanges = new Set<Exchange>()
  const sockets = new Set<Socket>()
  const counts = {forwarded: 0, held: 0, failed: 0, withheld: 0}

  const ruleFor = (request: ProxiedRequest) => rules.find((rule) => rule.match(request))
  const hungBy = (request: ProxiedRequest) => rules.some((rule) => rule.action.kind === 'hang' && rule.match(request))

  function dispatch(exchange: Exchange): void {
    const rule = ruleFor(exchange.request)
    if (rule?.action.kind === 'hang') {
      exchange.state = 'held'
      counts.held++
    } else if (rule?.action.kind === 'fail') {
      exchange.state = 'answered'
      counts.failed++
      answer(exchange.res, rule.action.body)
    } else {
      exchange.state = 'forwarded'
      counts.forwarded++
      forward(exchange, upstreamPort, counts)
    }
  }

  function add(action: Action, match: RequestMatch): Fault {
    const rule = {match, action}
    rules.push(rule)
    if (action.kind === 'hang') {
      for (const exchange of exchanges) if (exchange.state === 'forwarded' && match(exchange.request)) exchange.frozen = true
    }
    return {lift: () => lift([rule])}
  }

  function lift(lifted: Rule[]): void {
    for (const rule of lifted) {
      const index = rules.indexOf(rule)
      if (index >= 0) rules.splice(index, 1)
    }
    for (const exchange of [...exchanges]) {
      if (hungBy(exchange.request)) continue
      if (exchange.state === 'held') dispatch(exchange)
      else if (exchange.frozen) {
        exchange.frozen = false
        exchange.resume?.()
      }
    }
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://proxy')
    const request: ProxiedRequest = {
      method: req.method ?? 'GET',
      path: url.pathname,
      query: url.searchParams,
      watch: url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1',
    }
    const chunks: Buffer[] = []
    req.on('data', (chunk: Buffer) => chunks.push(chunk))
    req.on('end', () => {
      const exchange: Exchange = {request, req, res, body: Buffer.concat(chunks), state: 'held', frozen: false}
      exchanges.add(exchange)
      res.on('close', () => {
        exchanges.delete(exchange)
        exchange.upstream?.destroy()
      })
      dispatch(exchange)
    })
  })
  server.on('connection', (socket: Socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => resolve())
  })
  const {port} = server.address() as AddressInfo

  function cutConnections(): void {
    for (const exchange of exchanges) exchange.upstream?.destroy()
    for (const socket of sockets) socket.destroy()
  }

  return {
    url: `http://127.0.0.1:${port}`,
    port,
    hang: (match = everyRequest) => add({kind: 'hang'}, match),
    fail: (code, match = everyRequest, message = `injected failure ${code}`) =>
      add({kind: 'fail', body: {kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason: REASONS[code] ?? 'Unknown', code}}, match),
    passThrough: () => lift([...rules]),
    cutConnections,
    held: () => [...exchanges].filter((e) => e.state === 'held').length,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        rules.length = 0
        server.close(() => resolve())
        cutConnections()
      }),
  }
}

/** The test API server's kubeconfig, pointing at the proxy instead. */
export function kubeconfigThrough(server: ApiServer, proxy: FaultProxy): string {
  return server.kubeconfig().replace(server.url, proxy.url)
}

function answer(res: ServerResponse, body: StatusBody): void {
  const text = JSON.stringify(body)
  res.writeHead(body.code, {'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(text))})
  res.end(text)
}

/** Sends the request on and streams the answer back, chunk by chunk, stopping while the exchange is frozen. */
function forward(exchange: Exchange, upstreamPort: number, counts: {withheld: number}): void {
  const {req, res} = exchange
  const upstream = upstreamRequest({host: '127.0.0.1', port: upstreamPort, method: req.method, path: req.url, headers: passedOn(req.headers), agent: false})
  exchange.upstream = upstream
  // A server that is gone looks, through the proxy, like one that reset the connection.
  upstream.on('error', () => req.socket.destroy())
  upstream.on('response', (reply) => {
    // What arrived while frozen waits here, so not one chunk slips past a hang.
    const waiting: Buffer[] = []
    let ended = false
    const pump = () => {
      if (exchange.frozen || res.destroyed) return
      if (!res.headersSent) res.writeHead(reply.statusCode ?? 502, passedOn(reply.headers))
      while (waiting.length > 0) if (!res.write(waiting.shift()!)) return
      if (ended) {
        exchange.state = 'answered'
        res.end()
      } else reply.resume()
    }
    exchange.resume = pump
    reply.on('data', (chunk: Buffer) => {
      if (exchange.frozen) {
        waiting.push(chunk)
        counts.withheld++
        reply.pause()
      } else if (!res.write(chunk)) reply.pause()
    })
    reply.on('end', () => {
      ended = true
      pump()
    })
    reply.on('error', () => req.socket.destroy())
    res.on('drain', pump)
    reply.pause()
    pump()
  })
  upstream.end(exchange.body)
}

function passedOn(headers: IncomingMessage['headers']): OutgoingHttpHeaders {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => !HOP_BY_HOP.has(name.toLowerCase())))
}
