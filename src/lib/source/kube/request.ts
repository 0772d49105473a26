/**
 * Deadlines and failure accounting for every request smartnat makes to the API server. An API server
 * that accepts a connection and never answers must not hold anything up: each request ends at its
 * deadline with an error that says so, and every failed request is reported, whatever the reason.
 */
import {Observable, type ConfigurationOptions, type ObservableMiddleware, type RequestContext} from '@kubernetes/client-node'
import {httpStatusOf} from './errors.js'

/** How long one request waits for its answer unless told otherwise (--api-timeout). */
export const DEFAULT_API_TIMEOUT_MS = 30_000

/** One kind of request, as the metrics count them. */
export interface ApiRequest {
  /** Mapping, Service, EndpointSlice, Event or Lease. */
  kind: string
  verb: 'list' | 'watch' | 'get' | 'patch' | 'create' | 'update'
}

export interface ApiOptions {
  /** Longest wait for the answer to one request (for a watch: for its response headers); DEFAULT_API_TIMEOUT_MS when absent. */
  timeoutMs?: number
  /** Told of every request that failed, with failureCode's reason. */
  onFailure?: (request: ApiRequest, code: string) => void
}

/** A request that got no answer in time. */
export class ApiTimeoutError extends Error {
  override readonly name = 'ApiTimeoutError'
}

/** Why a request failed, in a word: its HTTP status, `timeout`, or `error` (no connection, a broken stream). */
export function failureCode(error: unknown): string {
  if (error instanceof ApiTimeoutError) return 'timeout'
  const status = httpStatusOf(error)
  return status === undefined ? 'error' : String(status)
}

/** `250ms`, `30s`, `1.5s`: a duration as the messages say it. */
export function formatMs(ms: number): string {
  return ms < 1000 ? `${ms}ms` : `${ms / 1000}s`
}

/**
 * Runs one request/response exchange with a deadline. `send` gets a signal that aborts at the deadline, so
 * the connection is closed; the call rejects then even if `send` ignores the signal. A failure is reported
 * to `options.onFailure` and rethrown.
 */
export async function timedRequest<T>(request: ApiRequest, options: ApiOptions, send: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_API_TIMEOUT_MS
  const controller = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => {
      const error = new ApiTimeoutError(`no response within ${formatMs(timeoutMs)}`)
      // Rejected before the abort, so the caller sees the timeout rather than the abort it causes.
      reject(error)
      controller.abort(error)
    }, timeoutMs)
  })
  try {
    return await Promise.race([send(controller.signal), deadline])
  } catch (error) {
    options.onFailure?.(request, failureCode(error))
    throw error
  } finally {
    clearTimeout(timer)
  }
}

/** Per-call options for client-node's typed APIs that end the request when `signal` aborts. */
export function abortOn(signal: AbortSignal, options: ConfigurationOptions = {}): ConfigurationOptions {
  const middleware: ObservableMiddleware = {
    pre: (context: RequestContext) => {
      context.setSignal(signal)
      return new Observable(Promise.resolve(context))
    },
    post: (response) => new Observable(Promise.resolve(response)),
  }
  return {...options, middleware: [...(options.middleware ?? []), middleware], middlewareMergeStrategy: 'append'}
}
