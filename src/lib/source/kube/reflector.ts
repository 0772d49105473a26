/**
 * Keeps an in-memory copy of one kind: list (paged), then watch from the list's resourceVersion; relist at
 * once on 410 Gone, and after a bounded backoff on any other failure. The copy survives failures.
 */
import {Watch, type KubeConfig} from '@kubernetes/client-node'
import type {Backoff, Delay} from './backoff.js'
import {describeApiError, isGone} from './errors.js'
import {cachedObject, type KindName, type WatchedKind, type WireObject} from './kinds.js'
import {listAll} from './pager.js'

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

export class Reflector {
  /** namespace/name -> object. */
  readonly objects = new Map<string, WireObject>()
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
        // A watch the server closed resumes from the last resourceVersion, paced so a server that
        // keeps closing watches at once is not hammered.
        if (!relist) await delay(backoff.next(), this.stopSignal.signal)
      } catch (error) {
        if (this.stopped) break
        this.fail(error)
        relist = true
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
    for (const [key, item] of fresh) {
      const old = this.objects.get(key)
      if (!old) changes.push(this.change('ADDED', item))
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion || old.metadata.uid !== item.metadata.uid) changes.push(this.change('MODIFIED', item))
    }
    for (const [key, old] of this.objects) if (!fresh.has(key)) changes.push(this.change('DELETED', old))
    this.objects.clear()
    for (const [key, item] of fresh) this.objects.set(key, item)
    this.resourceVersion = resourceVersion
    this.options.backoff.reset()
    this.succeed(true)
    for (const change of changes) this.options.onChange(change)
  }

  private watch(): Promise<WatchEnd> {
    const {kind, kubeConfig, random} = this.options
    const timeoutSeconds = this.options.watchTimeoutSeconds ?? Math.floor(MIN_WATCH_TIMEOUT_SECONDS * (1 + random()))
    this.watchAbort = undefined
    return new Promise<WatchEnd>((resolve, reject) => {
      let settled = false
      const settle = (finish: () => void) => {
        if (settled) return
        settled = true
        this.watchAbort?.abort()
        finish()
      }
      const onEvent = (type: string, object: WireObject & {code?: number; message?: string}) => {
        if (settled) return
        if (type === 'ERROR') {
          if (isGone(object)) settle(() => resolve('gone'))
          else settle(() => reject(new Error(`watch ${kind.path}: ${object.message ?? JSON.stringify(object)}`)))
          return
        }
        const rv = object.metadata?.resourceVersion
        if (rv) this.resourceVersion = rv
        if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') this.apply(type, cachedObject(kind, object))
      }
      const onDone = (error: unknown) => {
        if (error === null || error === undefined) settle(() => resolve('closed'))
        else if (isGone(error)) settle(() => resolve('gone'))
        else settle(() => reject(new Error(`watch ${kind.path}: ${describeApiError(error)}`, {cause: error})))
      }
      const query = {resourceVersion: this.resourceVersion, allowWatchBookmarks: true, timeoutSeconds}
      new Watch(kubeConfig).watch(kind.path, query, onEvent, onDone).then((abort) => {
        this.watchAbort = abort
        if (this.stopped || settled) {
          abort.abort()
          return
        }
        this.options.backoff.reset()
        this.succeed(false)
      }, (error: unknown) => settle(() => reject(error instanceof Error ? error : new Error(String(error)))))
    })
  }

  private apply(type: ChangeType, object: WireObject): void {
    const key = keyOf(object)
    if (type === 'DELETED') {
      if (!this.objects.delete(key)) return
    } else {
      const old = this.objects.get(key)
      this.objects.set(key, object)
      // A watch resumed after a relist may repeat what the list already showed.
      if (old && old.metadata.resourceVersion === object.metadata.resourceVersion) return
    }
    this.options.onChange(this.change(type, object))
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

function keyOf(object: WireObject): string {
  return `${object.metadata.namespace ?? ''}/${object.metadata.name ?? ''}`
}
