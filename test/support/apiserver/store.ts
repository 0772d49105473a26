/** In-memory object storage with one global resourceVersion counter and a bounded event history. */
import {expired} from './errors.js'

export type KubeObject = Record<string, unknown> & {metadata: Record<string, unknown> & {name: string; namespace?: string}}

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED'

/** One committed change; `prev` is the object before it (absent for ADDED). */
export interface StoredEvent {
  rv: number
  type: WatchEventType
  bucket: string
  key: string
  object: KubeObject
  prev?: KubeObject
}

export type EventListener = (event: StoredEvent) => void

/** Storage key of an object: `namespace/name`, or `/name` when cluster-scoped. */
export function objectKey(namespace: string | undefined, name: string): string {
  return `${namespace ?? ''}/${name}`
}

/** Deep copy of a JSON value; stored objects never share structure with callers. */
export function clone<T>(value: T): T {
  return structuredClone(value)
}

export class Store {
  private rv = 0
  private readonly buckets = new Map<string, Map<string, KubeObject>>()
  private history: StoredEvent[] = []
  private compactedRv = 0
  private readonly listeners = new Map<string, Set<EventListener>>()

  /** historySize: how many events are kept for watches and paged lists before they answer 410 Gone. */
  constructor(private historySize: number) {}

  /** The newest resourceVersion handed out. */
  currentRv(): number {
    return this.rv
  }

  /** The newest resourceVersion that is no longer in the history (a watch from it or older gets 410). */
  oldestWatchableRv(): number {
    return this.compactedRv
  }

  /** Changes how many events are kept, dropping the oldest when it shrinks. */
  setHistorySize(size: number): void {
    this.historySize = size
    this.trim()
  }

  /** Drops the whole event history, as etcd compaction does: every older resourceVersion becomes too old. */
  compact(): void {
    this.compactedRv = this.rv
    this.history = []
  }

  /**
   * Starts a new resourceVersion history over the same objects, as an API server restarted onto a
   * restored or replaced etcd: every object gets a new resourceVersion above every one handed out
   * before, and the history starts empty, so a watch, list or continue token from any earlier
   * resourceVersion gets 410 Gone. Emits no events: call it while no watch is open.
   */
  newHistory(): void {
    for (const bucket of [...this.buckets.keys()].sort()) {
      for (const object of sortedValues(this.buckets.get(bucket)!)) object.metadata.resourceVersion = String(++this.rv)
    }
    this.compact()
  }

  get(bucket: string, key: string): KubeObject | undefined {
    const found = this.buckets.get(bucket)?.get(key)
    return found === undefined ? undefined : clone(found)
  }

  /** Current objects of a bucket in key order (etcd's order), optionally of one namespace. */
  list(bucket: string, namespace?: string): KubeObject[] {
    return this.listShared(bucket, namespace).map(clone)
  }

  /**
   * list() without the copies: the stored objects themselves, to be read and never modified or
   * handed out. A paged list copies only its page (copying all 10,000 objects of a bucket for each
   * page of 500 made listing them take 3 s).
   */
  listShared(bucket: string, namespace?: string): readonly KubeObject[] {
    return sortedValues(this.buckets.get(bucket) ?? new Map(), namespace)
  }

  /**
   * The objects of a bucket as they were at resourceVersion `rv`, shared as listShared() shares them;
   * 410 when the history no longer reaches back.
   */
  listSharedAt(bucket: string, rv: number, namespace?: string, tooOld = `too old resource version: ${rv} (${this.rv})`): readonly KubeObject[] {
    if (rv >= this.rv) return this.listShared(bucket, namespace)
    if (rv < this.compactedRv) throw expired(tooOld)
    const state = new Map(this.buckets.get(bucket) ?? new Map<string, KubeObject>())
    for (let i = this.history.length - 1; i >= 0; i--) {
      const event = this.history[i]!
      if (event.rv <= rv) break
      if (event.bucket !== bucket) continue
      if (event.prev === undefined) state.delete(event.key)
      else state.set(event.key, event.prev)
    }
    return sortedValues(state, namespace)
  }

  /** Events of a bucket after resourceVersion `rv`, oldest first; 410 when some of them were dropped. */
  eventsSince(bucket: string, rv: number): StoredEvent[] {
    if (rv < this.compactedRv) throw expired(`too old resource version: ${rv} (${this.oldestRetainedRv()})`)
    return this.history.filter((e) => e.rv > rv && e.bucket === bucket).map((e) => clone(e))
  }

  /** Stores (or, with `object` undefined, removes) an object, stamping the next resourceVersion on it. */
  commit(bucket: string, key: string, object: KubeObject | undefined, deleted?: KubeObject): KubeObject {
    const objects = this.bucket(bucket)
    const prev = objects.get(key)
    this.rv++
    const rvText = String(this.rv)
    let event: StoredEvent
    if (object === undefined) {
      if (prev === undefined) throw new Error(`commit: ${bucket} ${key} does not exist`)
      const gone = clone(deleted ?? prev)
      gone.metadata.resourceVersion = rvText
      objects.delete(key)
      event = {rv: this.rv, type: 'DELETED', bucket, key, object: gone, prev}
    } else {
      const stored = clone(object)
      stored.metadata.resourceVersion = rvText
      objects.set(key, stored)
      event = prev === undefined
        ? {rv: this.rv, type: 'ADDED', bucket, key, object: stored}
        : {rv: this.rv, type: 'MODIFIED', bucket, key, object: stored, prev}
    }
    this.history.push(event)
    this.trim()
    for (const listener of this.listeners.get(bucket) ?? []) listener(clone(event))
    return clone(event.object)
  }

  /** Calls `listener` for every later change to the bucket; returns the unsubscribe function. */
  subscribe(bucket: string, listener: EventListener): () => void {
    let set = this.listeners.get(bucket)
    if (!set) {
      set = new Set()
      this.listeners.set(bucket, set)
    }
    set.add(listener)
    return () => set.delete(listener)
  }

  /** Drops a whole bucket without events, as removing a served resource type does after its objects are deleted. */
  dropBucket(bucket: string): void {
    this.buckets.delete(bucket)
  }

  private oldestRetainedRv(): number {
    return this.history[0]?.rv ?? this.rv
  }

  private bucket(name: string): Map<string, KubeObject> {
    let objects = this.buckets.get(name)
    if (!objects) {
      objects = new Map()
      this.buckets.set(name, objects)
    }
    return objects
  }

  private trim(): void {
    const excess = this.history.length - this.historySize
    if (excess <= 0) return
    this.compactedRv = this.history[excess - 1]!.rv
    this.history = this.history.slice(excess)
  }
}

function sortedValues(objects: Map<string, KubeObject>, namespace?: string): KubeObject[] {
  const keys = [...objects.keys()].filter((k) => namespace === undefined || k.startsWith(`${namespace}/`)).sort()
  return keys.map((k) => objects.get(k)!)
}
