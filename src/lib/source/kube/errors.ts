/**
 * HTTP status of failures from the API server, whichever client call produced them. The client's
 * ApiException is recognised by its shape, not imported: a sync from a file reports through these
 * and must not load the Kubernetes client (several hundred ms).
 */

/** What @kubernetes/client-node's ApiException carries: the HTTP code, the decoded body and the headers. */
interface ApiExceptionLike extends Error {
  code: number
  body: unknown
  headers: unknown
}

function isApiException(error: unknown): error is ApiExceptionLike {
  return error instanceof Error && typeof (error as {code?: unknown}).code === 'number' && 'body' in error && 'headers' in error
}

/** The HTTP status code an error carries (typed calls, watch requests, Status objects), if any. */
export function httpStatusOf(error: unknown): number | undefined {
  if (isApiException(error)) return error.code
  if (typeof error !== 'object' || error === null) return undefined
  const {statusCode, code} = error as {statusCode?: unknown; code?: unknown}
  if (typeof statusCode === 'number') return statusCode
  return typeof code === 'number' ? code : undefined
}

/** 410 Gone: the resourceVersion or continue token is older than the server's history. */
export function isGone(error: unknown): boolean {
  return httpStatusOf(error) === 410
}

/** A one-line description of an API failure, with the server's message when it sent a Status. */
export function describeApiError(error: unknown): string {
  if (isApiException(error)) {
    const body = typeof error.body === 'string' ? safeParse(error.body) : error.body
    const message = (body as {message?: unknown} | undefined)?.message
    return `HTTP ${error.code}${typeof message === 'string' ? `: ${message}` : ''}`
  }
  return error instanceof Error ? error.message : String(error)
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}
