/** The HTTP front of the test API server: content negotiation, routing to discovery, OpenAPI, objects and watches. */
import {createServer, type IncomingMessage, type Server, type ServerResponse} from 'node:http'
import {parse as parseYaml} from 'yaml'
import {ApiError, badRequest, methodNotAllowed, notAcceptable, pathNotFound, unsupportedMediaType} from './errors.js'
import {PatchType, type FieldValidation, type ObjectApi} from './objects.js'
import {openApiDocument, openApiIndex} from './openapi.js'
import type {Registry} from './registry.js'
import {route} from './routes.js'
import {toTable, type IncludeObject} from './table.js'
import {serveWatch, type WatchHub} from './watch.js'

/** What the server reports at /version. */
export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-12-11T00:00:00Z',
  goVersion: 'go1.23.3',
  compiler: 'gc',
  platform: 'linux/amd64',
}

interface MediaRange {
  type: string
  params: Record<string, string>
}

function parseAccept(header: string | undefined): MediaRange[] {
  if (!header) return [{type: '*/*', params: {}}]
  return header.split(',').map((part) => {
    const [type, ...params] = part.split(';').map((s) => s.trim())
    return {type: (type ?? '').toLowerCase(), params: Object.fromEntries(params.map((p) => p.split('=').map((s) => s.trim()) as [string, string]))}
  })
}

const PLAIN_JSON = ['application/json', 'application/*', '*/*']

/** The first Accept entry this server can produce for a resource response: a Table, or plain JSON. */
function negotiateObject(accept: MediaRange[]): 'table' | 'json' {
  for (const range of accept) {
    if (range.type === 'application/json' && range.params.as === 'Table' && range.params.g === 'meta.k8s.io') return 'table'
    if (PLAIN_JSON.includes(range.type) && range.params.as === undefined) return 'json'
  }
  throw notAcceptable(accept.map((r) => r.type).join(','))
}

/** The aggregated discovery version the client asked for first, if it asked before plain JSON. */
function negotiateDiscovery(accept: MediaRange[]): string | undefined {
  for (const range of accept) {
    if (range.params.g === 'apidiscovery.k8s.io' && range.params.as === 'APIGroupDiscoveryList' && ['v2', 'v2beta1'].includes(range.params.v ?? '')) return range.params.v
    if (PLAIN_JSON.includes(range.type) && range.params.as === undefined) return undefined
  }
  return undefined
}

function send(res: ServerResponse, code: number, body: unknown, contentType = 'application/json', warnings: string[] = []): void {
  const text = JSON.stringify(body)
  const headers: Record<string, string | string[]> = {'Content-Type': contentType, 'Cache-Control': 'no-cache, private', 'Content-Length': String(Buffer.byteLength(text))}
  if (warnings.length > 0) headers.Warning = warnings.map((w) => `299 - ${JSON.stringify(w)}`)
  res.writeHead(code, headers)
  res.end(text)
}

function sendError(res: ServerResponse, err: unknown): void {
  const apiError = err instanceof ApiError ? err : new ApiError(500, 'InternalError', `Internal error occurred: ${err instanceof Error ? err.message : String(err)}`)
  if (res.headersSent) {
    res.destroy()
    return
  }
  send(res, apiError.code, apiError.toStatus())
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = []
  for await (const chunk of req) chunks.push(chunk as Buffer)
  return Buffer.concat(chunks).toString('utf8')
}

function decodeBody(text: string, contentType: string): unknown {
  try {
    if (contentType.includes('yaml')) return parseYaml(text) as unknown
    return JSON.parse(text) as unknown
  } catch (err) {
    throw badRequest(`error decoding request body: ${err instanceof Error ? err.message : String(err)}`)
  }
}

export interface ServerContext {
  api: ObjectApi
  registry: Registry
  hub: WatchHub
  aggregatedDiscovery: boolean
  log?: (line: string) => void
  /** Added before handling each write (POST, PUT, PATCH, DELETE), as a real server's storage write takes time. */
  writeLatencyMs?: number
}

const WRITES = new Set(['POST', 'PUT', 'PATCH', 'DELETE'])

/** Creates the HTTP server; it is not listening yet. */
export function createApiHttpServer(ctx: ServerContext): Server {
  return createServer((req, res) => {
    ctx.log?.(`${req.method} ${req.url} accept=${req.headers.accept ?? ''} content-type=${req.headers['content-type'] ?? ''}`)
    const latency = WRITES.has(req.method ?? '') ? (ctx.writeLatencyMs ?? 0) : 0
    const start = latency > 0 ? new Promise((resolve) => setTimeout(resolve, latency)) : Promise.resolve()
    start.then(() => handle(ctx, req, res)).catch((err: unknown) => sendError(res, err))
  })
}

async function handle(ctx: ServerContext, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost')
  const method = req.method ?? 'GET'
  const r = route(ctx.registry, url.pathname)
  if (!r) throw pathNotFound()
  const accept = parseAccept(req.headers.accept)
  if (r.kind !== 'resource' && method !== 'GET') throw methodNotAllowed(method)
  switch (r.kind) {
    case 'version':
      return send(res, 200, SERVER_VERSION)
    case 'health':
      res.writeHead(200, {'Content-Type': 'text/plain; charset=utf-8'})
      res.end('ok')
      return
    case 'coreVersions':
    case 'groupList': {
      const aggregated = ctx.aggregatedDiscovery ? negotiateDiscovery(accept) : undefined
      if (aggregated) {
        const contentType = `application/json;g=apidiscovery.k8s.io;v=${aggregated};as=APIGroupDiscoveryList`
        return send(res, 200, ctx.registry.aggregated(r.kind === 'coreVersions', `apidiscovery.k8s.io/${aggregated}`), contentType)
      }
      const host = req.headers.host ?? 'localhost'
      return send(res, 200, r.kind === 'coreVersions' ? ctx.registry.coreVersions(host) : ctx.registry.groupList())
    }
    case 'group':
      return send(res, 200, ctx.registry.group(r.group))
    case 'resourceList':
      return send(res, 200, ctx.registry.resourceList(r.group, r.version))
    case 'openapiIndex':
      return send(res, 200, openApiIndex(ctx.registry))
    case 'openapiDocument': {
      const doc = openApiDocument(ctx.registry, r.path)
      if (!doc) throw pathNotFound()
      return send(res, 200, doc)
    }
    case 'resource':
      return handleResource(ctx, r, method, url.searchParams, accept, req, res)
  }
}

type ResourceRoute = Extract<NonNullable<ReturnType<typeof route>>, {kind: 'resource'}>

async function handleResource(ctx: ServerContext, r: ResourceRoute, method: string, q: URLSearchParams, accept: MediaRange[], req: IncomingMessage, res: ServerResponse): Promise<void> {
  const {api} = ctx
  const {type, namespace, name} = r
  const status = r.subresource === 'status'
  const dryRun = q.getAll('dryRun').includes('All')
  const fieldValidation = (q.get('fieldValidation') ?? undefined) as FieldValidation | undefined
  if (fieldValidation !== undefined && !['Strict', 'Warn', 'Ignore'].includes(fieldValidation)) {
    throw badRequest(`fieldValidation parameter unsupported: "${fieldValidation}" (valid: Ignore, Warn, Strict)`)
  }
  const format = method === 'GET' ? negotiateObject(accept) : 'json'
  const include = (q.get('includeObject') ?? 'Metadata') as IncludeObject
  const contentType = (req.headers['content-type'] ?? 'application/json').split(';')[0]!.trim().toLowerCase()
  const body = async () => {
    const text = await readBody(req)
    if (!['application/json', 'application/yaml', ...Object.values(PatchType)].includes(contentType)) throw unsupportedMediaType(contentType)
    return decodeBody(text, contentType)
  }

  if (name === undefined) {
    const query = {
      labelSelector: q.get('labelSelector'),
      fieldSelector: q.get('fieldSelector'),
      limit: q.has('limit') ? Number(q.get('limit')) : undefined,
      continue: q.get('continue'),
      resourceVersion: q.get('resourceVersion'),
      resourceVersionMatch: q.get('resourceVersionMatch'),
    }
    switch (method) {
      case 'GET': {
        if (q.get('watch') === 'true' || q.get('watch') === '1') {
          return serveWatch(api, ctx.hub, res, {
            type, namespace, ...query,
            allowWatchBookmarks: q.get('allowWatchBookmarks') === 'true',
            sendInitialEvents: q.get('sendInitialEvents') === 'true',
            timeoutSeconds: q.has('timeoutSeconds') ? Number(q.get('timeoutSeconds')) : undefined,
            table: format === 'table' ? include : undefined,
          })
        }
        const list = api.list(type, namespace, query)
        return send(res, 200, format === 'table' ? toTable(type, list.items, include, list.metadata) : list)
      }
      case 'POST': {
        const result = api.create(type, namespace, await body(), {dryRun, fieldValidation})
        return send(res, 201, result.object, 'application/json', result.warnings)
      }
      case 'DELETE':
        return send(res, 200, api.deleteCollection(type, namespace, query, dryRun))
      default:
        throw methodNotAllowed(method)
    }
  }

  switch (method) {
    case 'GET': {
      const obj = api.get(type, namespace, name)
      return send(res, 200, format === 'table' ? toTable(type, [obj], include, {resourceVersion: obj.metadata.resourceVersion}) : obj)
    }
    case 'PUT': {
      const result = api.update(type, namespace, name, await body(), {dryRun, fieldValidation, status})
      return send(res, 200, result.object, 'application/json', result.warnings)
    }
    case 'PATCH': {
      const patch = await body()
      const result = api.patch(type, namespace, name, contentType, patch, {dryRun, fieldValidation, status, fieldManager: q.get('fieldManager') ?? undefined})
      return send(res, result.created ? 201 : 200, result.object, 'application/json', result.warnings)
    }
    case 'DELETE': {
      if (status) throw methodNotAllowed(method)
      const text = await readBody(req)
      const options = text.trim() === '' ? {} : (decodeBody(text, contentType) as Record<string, unknown>)
      const result = api.delete(type, namespace, name, options, dryRun)
      const pending = result.kind !== 'Status' && (result as {metadata: {deletionTimestamp?: string}}).metadata.deletionTimestamp !== undefined && !dryRun
      return send(res, pending ? 202 : 200, result)
    }
    default:
      throw methodNotAllowed(method)
  }
}
