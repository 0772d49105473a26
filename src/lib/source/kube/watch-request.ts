/**
 * One watch request, with the deadlines client-node's Watch does not have: it cannot be aborted before the
 * response headers arrive (it hands out its abort controller only then), so a server that accepts the
 * connection and never answers would hold it forever. Here the headers must come within `timeoutMs`, and
 * the open stream may last `deadlineMs` at most; the server was asked (timeoutSeconds) to end it sooner.
 */
import {request as httpRequest, type ClientRequest, type IncomingMessage} from 'node:http'
import {request as httpsRequest, type RequestOptions} from 'node:https'
import {createInterface} from 'node:readline'
import type {KubeConfig} from '@kubernetes/client-node'
import {ApiTimeoutError, formatMs} from './request.js'

export interface WatchRequest {
  /** The collection to watch, e.g. /api/v1/services. */
  path: string
  query: Record<string, string | number | boolean>
  /** Longest wait for the response headers. */
  timeoutMs: number
  /** Longest time the watch may stay open once it is. */
  deadlineMs: number
  /** Ends the watch; the call then resolves. */
  signal: AbortSignal
  /** The server accepted the watch (200). */
  onOpen(): void
  /** One event as the server sent it: ADDED, MODIFIED, DELETED, BOOKMARK or ERROR, with its object. */
  onEvent(type: string, object: unknown): void
}

/** What an error response of the API server holds: the HTTP status as `statusCode`, and its Status message. */
export interface HttpStatusError extends Error {
  statusCode: number
}

// An error response is a Status object; more than this is not one.
const MAX_ERROR_BODY = 64 * 1024

/**
 * Runs one watch to its end: resolves when the server ends the stream or `signal` aborts; rejects when the
 * connection fails, the server answers with an error status, a line is not JSON, or a deadline passes.
 */
export function runWatch(kubeConfig: KubeConfig, watch: WatchRequest): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let settled = false
    let req: ClientRequest | undefined
    // The first deadline also covers getting credentials, which may run an exec plugin.
    let timer = setTimeout(() => finish(new ApiTimeoutError(`no response within ${formatMs(watch.timeoutMs)}`)), watch.timeoutMs)
    const onAbort = () => finish()
    watch.signal.addEventListener('abort', onAbort, {once: true})
    if (watch.signal.aborted) finish()

    function finish(error?: Error): void {
      if (settled) return
      settled = true
      clearTimeout(timer)
      watch.signal.removeEventListener('abort', onAbort)
      req?.destroy()
      if (error) reject(error)
      else resolve()
    }

    function onResponse(res: IncomingMessage): void {
      if (res.statusCode !== 200) {
        readErrorStatus(res).then((error) => finish(error), (error: Error) => finish(error))
        return
      }
      clearTimeout(timer)
      timer = setTimeout(
        () => finish(new ApiTimeoutError(`still open after ${formatMs(watch.deadlineMs)}, longer than the server was asked to keep it`)),
        watch.deadlineMs,
      )
      watch.onOpen()
      const lines = createInterface({input: res, crlfDelay: Infinity})
      lines.on('line', (line) => {
        if (settled || line.trim() === '') return
        let event: {type?: unknown; object?: unknown}
        try {
          event = JSON.parse(line) as typeof event
        } catch {
          finish(new Error(`not a watch event: ${line.slice(0, 120)}`))
          return
        }
        watch.onEvent(String(event.type), event.object)
      })
      // readline passes on the response's errors, which come after finish() too when it tears the connection down.
      lines.on('error', (error) => finish(error))
      // Registered after readline's own listeners, so the last line is handled before the end.
      res.on('end', () => finish())
      res.on('error', (error) => finish(error))
      res.on('close', () => finish(res.complete ? undefined : new Error('the connection closed in the middle of the watch')))
    }

    // The agent (TLS material, proxy) and the credentials, exactly as client-node's own requests get them.
    const options: RequestOptions = {}
    kubeConfig.applyToHTTPSOptions(options).then(() => {
      if (settled) return
      const cluster = kubeConfig.getCurrentCluster()
      if (!cluster) throw new Error('no current cluster')
      const url = new URL(cluster.server + watch.path)
      url.searchParams.set('watch', 'true')
      for (const [key, value] of Object.entries(watch.query)) url.searchParams.set(key, String(value))
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest
      req = send(url, {method: 'GET', agent: options.agent, headers: {...options.headers, Accept: 'application/json'}, ...(options.auth ? {auth: options.auth} : {})})
      req.on('error', (error) => finish(error))
      req.on('response', onResponse)
      req.end()
    }).catch((error: unknown) => finish(error instanceof Error ? error : new Error(String(error))))
  })
}

/** The error an API server's non-200 answer stands for: its Status message, or the HTTP reason. */
async function readErrorStatus(res: IncomingMessage): Promise<HttpStatusError> {
  let body = ''
  for await (const chunk of res) {
    body += String(chunk)
    if (body.length > MAX_ERROR_BODY) break
  }
  const status = res.statusCode ?? 0
  let message: unknown
  try {
    message = (JSON.parse(body) as {message?: unknown}).message
  } catch {
    message = undefined
  }
  const text = typeof message === 'string' ? message : res.statusMessage ?? 'no reason given'
  return Object.assign(new Error(`HTTP ${status}: ${text}`), {statusCode: status})
}
