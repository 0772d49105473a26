/**
 * Keeps an in-memory copy of one kind: list (paged), then watch from the list's resourceVersion; relist at
 * once on 410 Gone, and after a bounded backoff on any other failure, except a watch that stalled past its
 * deadline, which resumes from its last resourceVersion. The copy survives failures.
 */
import type {KubeConfig} from '@kubernetes/client-node'
import {SortedObjects} from './sorted.js'
import {sleep, type Backoff, type Delay} from './backoff.js'
import {describeApiError, httpStatusOf, isGone} from './errors.js'
import type {KindName, WatchedKind, WireObject} from './kinds.js'
import {cachedObject} from './trim.js'
import {listAll} from './pager.js'
import {ApiTimeoutError, DEFAULT_API_TIMEOUT_MS, failureCode, type ApiOptions} from './request.js'
import {runWatch} from './watch-request.js'

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED'

/** One object that appeared, changed or went away, seen by a watch or by comparing a relist with the cache. */
export interface ObjectChange {
  kind: KindName
  type: ChangeType
  namespace: string
  name: string
}

export interface ReflectorOptions {
  kind: WatchedKind
  kubeConfig: KubeConfig
  /** The deadline of each request, and who hears of failed ones (the lists report their own). */
  api: ApiOptions
  pageSize: number
  backoff: Backoff
  delay: Delay
  /** Random source in [0, 1) for spreading watch timeouts. */
  random: () => number
  /** How long the server keeps one watch open; spread over 5-10 minutes when absent. */
  watchTimeoutSeconds?: number
  onChange(change: ObjectChange): void
  /** Called when synced or lastError changes. */
  onState(): void
}

/** How a watch ended without failing: closed by the server, or told that its resourceVersion is too old. */
type WatchEnd = 'closed' | 'gone'

// Servers end watches after timeoutSeconds; spreading it over 5-10 minutes keeps instances from reconnecting in step.
const MIN_WATCH_TIMEOUT_SECONDS = 300

/** A watch that was open and stayed open past its deadline, which the server should have ended: the connection was lost on the way. */
class StalledWatchError extends Error {}

export class Reflector {
  /** namespace/name -> object. */
  readonly objects = new SortedObjects<WireObject>()
  /** True once a list has completed; it stays true through later failures, since the cache is kept. */
  synced = false
  /** The failure that the current backoff is waiting out; cleared by the next successful list or watch. */
  lastError: Error | undefined
  resourceVersion = ''

  private readonly stopSignal = new AbortController()
  private watchAbort: AbortController | undefined
  private loop: Promise<void> | undefined

  constructor(private readonly options: ReflectorOptions) {}

  get kind(): KindName {
    return this.options.kind.name
  }

  start(): void {
    this.loop ??= this.run()
  }

  /** Ends the watch and any pending wait; resolves when the loop has finished. */
  async stop(): Promise<void> {
    this.stopSignal.abort()
    this.watchAbort?.abort()
    await this.loop
  }

  private get stopped(): boolean {
    return this.stopSignal.signal.aborted
  }

  private async run(): Promise<void> {
    const {backoff, delay} = this.options
    let relist = true
    while (!this.stopped) {
      try {
        if (relist) await this.list()
        relist = (await this.watch()) === 'gone'
        if (this.stopped) break
        // A watch the server closed resumes from the last resourceVersion, paced so a server that
        // keeps closing watches at once is not hammered.
        if (!relist) await delay(backoff.next(), this.stopSignal.signal)
      } catch (error) {
        if (this.stopped) break
        if (this.options.kind.optional && isNotFound(error)) {
          // The CRD is not installed: no objects of the kind, and nothing wrong; look again later, on
          // the real clock (the injected delay paces recovery from failures, and this is none).
          this.absent()
          relist = true
          await sleep(ABSENT_RECHECK_MS, this.stopSignal.signal)
          continue
        }
        this.fail(error)
        // The cache is good up to the last resourceVersion a stalled watch delivered: resume from there.
        relist = !(error instanceof StalledWatchError)
        await delay(backoff.next(), this.stopSignal.signal)
      }
    }
  }

  private async list(): Promise<void> {
    const {kind, pageSize} = this.options
    let listed
    try {
      listed = await listAll(kind, pageSize)
    } catch (error) {
      throw new Error(`list ${kind.path}: ${describeApiError(error)}`, {cause: error})
    }
    const {items, resourceVersion} = listed
    if (this.stopped) return
    const fresh = new Map(items.map((item) => [keyOf(item), item]))
    const changes: ObjectChange[] = []
    for (const item of fresh.values()) {
      const old = this.objects.get(item.metadata.namespace ?? '', item.metadata.name ?? '')
      if (!old) changes.push(this.change('ADDED', item))
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion || old.metadata.uid !== item.metadata.uid) changes.push(this.change('MODIFIED', item))
    }
    for (const old of this.objects.values()) if (!fresh.has(keyOf(old))) changes.push(this.change('DELETED', old))
    this.objects.clear()
    for (const item of fresh.values()) this.objects.set(item)
    this.resourceVersion = resourceVersion
    this.options.backoff.reset()
    this.succeed(true)
    for (const change of changes) this.options.onChange(change)
  }

  private async watch(): Promise<WatchEnd> {
    const {kind, kubeConfig, random, api} = this.options
    const timeoutSeconds = this.options.watchTimeoutSeconds ?? Math.floor(MIN_WATCH_TIMEOUT_SECONDS * (1 + random()))
    const timeoutMs = api.timeoutMs ?? DEFAULT_API_TIMEOUT_MS
    const end = new AbortController()
    this.watchAbort = end
    if (this.stopped) return 'closed'
    let outcome: WatchEnd | Error = 'closed'
    let opened = false
    try {
      await runWatch(kubeConfig, {
        path: kind.path,
        query: {resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds},
        timeoutMs,
        // The server ends the watch after timeoutSeconds; one still open well after that has been lost on the way.
        deadlineMs: timeoutSeconds * 1000 + timeoutMs,
        signal: end.signal,
        onOpen: () => {
          opened = true
          this.options.backoff.reset()
          this.succeed(false)
        },
        onEvent: (type, event) => {
          if (end.signal.aborted) return
          const object = event as WireObject & {code?: number; message?: string}
          if (type === 'ERROR') {
            outcome = isGone(object) ? 'gone' : Object.assign(new Error(object.message ?? JSON.stringify(object)), {code: object.code})
            end.abort()
            return
          }
          const rv = object.metadata?.resourceVersion
          if (rv) this.resourceVersion = rv
          if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.apply(type, cachedObject(kind, object))
        },
      })
    } catch (error) {
      outcome = isGone(error) ? 'gone' : error instanceof Error ? error : new Error(String(error))
    } finally {
      this.watchAbort = undefined
    }
    if (this.stopped) return 'closed'
    // A 410 is not the server failing, but it is a request that did not succeed: counted like the others.
    if (outcome === 'gone') api.onFailure?.({kind: kind.name, verb: 'watch'}, '410')
    if (!(outcome instanceof Error)) return outcome
    api.onFailure?.({kind: kind.name, verb: 'watch'}, failureCode(outcome))
    const message = `watch ${kind.path}: ${describeApiError(outcome)}`
    throw opened && outcome instanceof ApiTimeoutError ? new StalledWatchError(message, {cause: outcome}) : new Error(message, {cause: outcome})
  }

  private apply(type: ChangeType, object: WireObject): void {
    const namespace = object.metadata.namespace ?? ''
    const name = object.metadata.name ?? ''
    if (type === 'DELETED') {
      if (!this.objects.delete(namespace, name)) return
    } else {
      const old = this.objects.get(namespace, name)
      this.objects.set(object)
      // A watch resumed after a relist may repeat what the list already showed.
      if (old && old.metadata.resourceVersion === object.metadata.resourceVersion) return
    }
    this.options.onChange(this.change(type, object))
  }

  /** The kind is not served: an empty, synced cache. */
  private absent(): void {
    const gone = [...this.objects.values()].map((old) => this.change('DELETED', old))
    this.objects.clear()
    this.resourceVersion = ''
    this.succeed(true)
    for (const change of gone) this.options.onChange(change)
  }

  private change(type: ChangeType, object: WireObject): ObjectChange {
    return {kind: this.kind, type, namespace: object.metadata.namespace ?? '', name: object.metadata.name ?? ''}
  }

  private succeed(listed: boolean): void {
    const changed = this.lastError !== undefined || (listed && !this.synced)
    this.lastError = undefined
    if (listed) this.synced = true
    if (changed) this.options.onState()
  }

  private fail(error: unknown): void {
    this.lastError = error instanceof Error ? error : new Error(String(error))
    this.options.onState()
  }
}

/** How often a kind whose CRD is not installed is looked for again. */
const ABSENT_RECHECK_MS = 30_000

/** A 404, from the request itself or from the error it caused. */
export function isNotFound(error: unknown): boolean {
  return httpStatusOf(error) === 404 || httpStatusOf((error as {cause?: unknown} | undefined)?.cause) === 404
}

function keyOf(object: WireObject): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`
}
