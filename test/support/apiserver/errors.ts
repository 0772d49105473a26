/** Kubernetes `Status` failures, as the API server sends them on the wire. */

export interface StatusCause {
  reason: string
  message: string
  field?: string
}

export interface StatusDetails {
  name?: string
  group?: string
  kind?: string
  uid?: string
  causes?: StatusCause[]
  retryAfterSeconds?: number
}

export interface StatusBody {
  kind: 'Status'
  apiVersion: 'v1'
  metadata: Record<string, unknown>
  status: 'Success' | 'Failure'
  message?: string
  reason?: string
  details?: StatusDetails
  code: number
}

/** An API failure that the server turns into a `Status` body with its HTTP code. */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message)
    this.name = 'ApiError'
  }

  /** The wire form of this error. */
  toStatus(): StatusBody {
    const body: StatusBody = {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      code: this.code,
    }
    if (this.details) body.details = this.details
    return body
  }
}

/** Names a resource the way the real server's messages do: `mappings.smartnat.aureacentral.com` or `services`. */
export function qualifiedResource(group: string, resource: string): string {
  return group === '' ? resource : `${resource}.${group}`
}

/** 404: the named object does not exist. */
export function notFound(group: string, resource: string, name: string): ApiError {
  return new ApiError(404, 'NotFound', `${qualifiedResource(group, resource)} "${name}" not found`, {
    name,
    group: group === '' ? undefined : group,
    kind: resource,
  })
}

/** 404 for a path the server does not serve at all. */
export function pathNotFound(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource', {})
}

/** 409: create of a name that exists. */
export function alreadyExists(group: string, resource: string, name: string): ApiError {
  return new ApiError(409, 'AlreadyExists', `${qualifiedResource(group, resource)} "${name}" already exists`, {
    name,
    group: group === '' ? undefined : group,
    kind: resource,
  })
}

/** 409: an update or precondition based on a stale resourceVersion or uid. */
export function conflict(group: string, resource: string, name: string, why: string): ApiError {
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualifiedResource(group, resource)} "${name}": ${why}`,
    {name, group: group === '' ? undefined : group, kind: resource},
  )
}

/** 422: the object failed validation; each cause names its field. */
export function invalid(group: string, kind: string, name: string, causes: StatusCause[]): ApiError {
  const list = causes.map((c) => (c.field ? `${c.field}: ${c.message}` : c.message))
  const summary = list.length === 1 ? list[0] : `[${list.join(', ')}]`
  const qualifiedKind = group === '' ? kind : `${kind}.${group}`
  return new ApiError(422, 'Invalid', `${qualifiedKind} "${name}" is invalid: ${summary}`, {
    name,
    group: group === '' ? undefined : group,
    kind,
    causes,
  })
}

/** 410: the requested resourceVersion has left the retained history. */
export function expired(message: string): ApiError {
  return new ApiError(410, 'Expired', message)
}

/** 400: a malformed request. */
export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message)
}

/** 405: the verb is not served on this path. */
export function methodNotAllowed(method: string): ApiError {
  return new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource (${method})`)
}

/** 415: a body or patch type the server does not decode. */
export function unsupportedMediaType(type: string): ApiError {
  return new ApiError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got ${type})`)
}

/** 406: none of the Accept types can be produced. */
export function notAcceptable(accept: string): ApiError {
  return new ApiError(406, 'NotAcceptable', `only the following media types are accepted: application/json, application/yaml (got ${accept})`)
}
