/** Streaming watches: newline-delimited JSON events over one chunked HTTP response, as kube-apiserver sends them. */
import type {ServerResponse} from 'node:http'
import {ApiError} from './errors.js'
import {parseRv, type ObjectApi} from './objects.js'
import {bucketOf, groupVersion, type ResourceType} from './resources.js'
import type {KubeObject, StoredEvent} from './store.js'
import {toTable, type IncludeObject} from './table.js'

export interface WatchRequest {
  type: ResourceType
  namespace?: string
  resourceVersion?: string | null
  labelSelector?: string | null
  fieldSelector?: string | null
  allowWatchBookmarks: boolean
  sendInitialEvents: boolean
  timeoutSeconds?: number
  /** Set when the client asked for Tables (kubectl get -w). */
  table?: IncludeObject
}

interface WireEvent {
  type: string
  object: unknown
}

/** Tracks open watches so that stopping the server ends them. */
export class WatchHub {
  private readonly open = new Set<() => void>()

  constructor(readonly bookmarkIntervalMs: number) {}

  add(close: () => void): () => void {
    this.open.add(close)
    return () => this.open.delete(close)
  }

  closeAll(): void {
    for (const close of [...this.open]) close()
  }

  get size(): number {
    return this.open.size
  }
}

/** Serves one watch until the client goes away, the timeout passes or the hub closes it. */
export function serveWatch(api: ObjectApi, hub: WatchHub, res: ServerResponse, req: WatchRequest): void {
  const {type} = req
  const match = api.matcher(type, req.labelSelector, req.fieldSelector)
  const bucket = bucketOf(type)
  const namespace = type.namespaced ? req.namespace : undefined
  const store = api.store
  const fromList = !req.resourceVersion || req.resourceVersion === '0' || req.sendInitialEvents
  const pending: WireEvent[] = []
  let lastRv = store.currentRv()

  if (fromList) {
    for (const obj of api.list(type, namespace, {labelSelector: req.labelSelector, fieldSelector: req.fieldSelector}).items) {
      pending.push({type: 'ADDED', object: obj})
    }
    if (req.sendInitialEvents && req.allowWatchBookmarks) pending.push(bookmark(type, lastRv, true))
  } else {
    const since = parseRv(req.resourceVersion!)
    try {
      for (const event of store.eventsSince(bucket, since)) {
        const wire = translate(event)
        if (wire) pending.push(wire)
      }
    } catch (err) {
      // The real watch cache answers an expired resourceVersion with 200 and one ERROR event carrying the 410 Status.
      if (!(err instanceof ApiError)) throw err
      res.writeHead(200, {'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private'})
      res.end(`${JSON.stringify({type: 'ERROR', object: err.toStatus()})}\n`)
      return
    }
  }

  function translate(event: StoredEvent): WireEvent | undefined {
    if (namespace !== undefined && event.object.metadata.namespace !== namespace) return undefined
    const now = event.type === 'DELETED' ? false : match(event.object)
    const before = event.type === 'ADDED' ? false : match(event.type === 'DELETED' ? event.object : event.prev!)
    const object = {...event.object, apiVersion: groupVersion(type), kind: type.kind}
    if (event.type === 'DELETED') return before ? {type: 'DELETED', object} : undefined
    if (now && before) return {type: 'MODIFIED', object}
    if (now) return {type: 'ADDED', object}
    if (before) return {type: 'DELETED', object: {...event.prev!, apiVersion: groupVersion(type), kind: type.kind, metadata: {...event.prev!.metadata, resourceVersion: String(event.rv)}}}
    return undefined
  }

  function write(event: WireEvent): void {
    const object = req.table && event.type !== 'BOOKMARK' && event.type !== 'ERROR'
      ? toTable(type, [event.object as KubeObject], req.table, {resourceVersion: (event.object as KubeObject).metadata.resourceVersion})
      : event.object
    res.write(`${JSON.stringify({type: event.type, object})}\n`)
  }

  res.writeHead(200, {'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private', 'Transfer-Encoding': 'chunked'})
  res.flushHeaders()
  for (const event of pending) write(event)

  const unsubscribe = store.subscribe(bucket, (event) => {
    lastRv = event.rv
    const wire = translate(event)
    if (wire) write(wire)
  })
  const timers: NodeJS.Timeout[] = []
  if (req.allowWatchBookmarks) {
    timers.push(setInterval(() => write(bookmark(type, Math.max(lastRv, store.currentRv()), false)), hub.bookmarkIntervalMs))
  }
  if (req.timeoutSeconds !== undefined && req.timeoutSeconds > 0) timers.push(setTimeout(() => close(), req.timeoutSeconds * 1000))
  let closed = false
  const forget = hub.add(() => close())
  function close(): void {
    if (closed) return
    closed = true
    unsubscribe()
    forget()
    for (const t of timers) clearInterval(t)
    res.end()
  }
  res.on('close', close)
}

function bookmark(type: ResourceType, rv: number, initialEventsEnd: boolean): WireEvent {
  const metadata: Record<string, unknown> = {resourceVersion: String(rv)}
  if (initialEventsEnd) metadata.annotations = {'k8s.io/initial-events-end': 'true'}
  return {type: 'BOOKMARK', object: {kind: type.kind, apiVersion: groupVersion(type), metadata}}
}
