/**
 * The file source as a SnapshotSource: the manifests of `--from-file`, read again whenever they change.
 *
 * fs.watch sees changes at once; a poll re-reads anyway every `pollIntervalMs`, because fs.watch
 * misses changes on some filesystems (NFS, some container mounts) and can fail outright when the
 * host runs out of inotify watches. A file is watched through its directory: editors and
 * `kubectl`-style tools replace a file by renaming a new one over it, which ends a watch on the
 * file itself. Each read takes the files whole (see stable-read.ts). A read that fails (bad YAML, a
 * file missing for a moment, files that keep changing) is reported in health and to `onReadError`,
 * and keeps the last good snapshot, so a typo or a half-written file never removes rules.
 */
import {watch, type FSWatcher} from 'node:fs'
import {stat} from 'node:fs/promises'
import {basename, dirname} from 'node:path'

import {errorText, silentLogger, type Logger} from '../observe/log.js'
import type {Snapshot} from '../plan/model.js'
import {readManifests} from './file.js'
import type {SnapshotSource, SourceHealth} from './source.js'

export interface FileWatchOptions {
  /** Re-read this often even without a file-system event (default 2000 ms). */
  pollIntervalMs?: number
  /** Events within this window become one read (default 50 ms): a save is often several events. */
  settleMs?: number
  logger?: Logger
  /** Called on every read that fails (to count them). */
  onReadError?: (error: string) => void
}

export class FileWatchSource implements SnapshotSource {
  private readonly listeners = new Set<() => void>()
  private readonly pollIntervalMs: number
  private readonly settleMs: number
  private readonly logger: Logger
  private readonly onReadError: (error: string) => void
  private current: Snapshot | undefined
  private currentText = ''
  private lastError: string | undefined
  private watcher: FSWatcher | undefined
  private pollTimer: NodeJS.Timeout | undefined
  private settleTimer: NodeJS.Timeout | undefined
  private reading: Promise<void> | undefined
  private readAgain = false
  private stopped = true

  constructor(
    readonly path: string,
    options: FileWatchOptions = {},
  ) {
    this.pollIntervalMs = options.pollIntervalMs ?? 2000
    this.settleMs = options.settleMs ?? 50
    this.logger = options.logger ?? silentLogger
    this.onReadError = options.onReadError ?? (() => {})
  }

  /** Reads the manifests once, then watches them; a failed first read shows in health, not as a throw. */
  async start(): Promise<void> {
    this.stopped = false
    await this.reload()
    this.watcher = await this.startWatcher()
    this.pollTimer = setInterval(() => this.schedule(0), this.pollIntervalMs)
  }

  async stop(): Promise<void> {
    this.stopped = true
    this.watcher?.close()
    this.watcher = undefined
    clearInterval(this.pollTimer)
    clearTimeout(this.settleTimer)
    await this.reading
  }

  snapshot(): Snapshot {
    return structuredClone(this.current ?? {mappings: [], services: [], endpointSlices: []})
  }

  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  health(): SourceHealth {
    return {synced: this.current !== undefined, ...(this.lastError ? {lastError: this.lastError} : {})}
  }

  private async startWatcher(): Promise<FSWatcher | undefined> {
    const isDirectory = await stat(this.path).then((s) => s.isDirectory(), () => false)
    const directory = isDirectory ? this.path : dirname(this.path)
    const name = basename(this.path)
    try {
      const watcher = watch(directory, {persistent: false}, (_event, file) => {
        if (isDirectory || file === null || file === name) this.schedule(this.settleMs)
      })
      watcher.on('error', (error) => {
        this.logger.warn('file watch failed; polling only', {path: this.path, error: errorText(error)})
        watcher.close()
      })
      return watcher
    } catch (error) {
      this.logger.warn('cannot watch manifests; polling only', {path: this.path, pollIntervalMs: this.pollIntervalMs, error: errorText(error)})
      return undefined
    }
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return
    clearTimeout(this.settleTimer)
    this.settleTimer = setTimeout(() => void this.reload(), delayMs)
  }

  // One read at a time; a change noticed during a read is read once more after it.
  private async reload(): Promise<void> {
    if (this.reading) {
      this.readAgain = true
      return this.reading
    }
    this.reading = this.read().finally(() => (this.reading = undefined))
    await this.reading
    if (this.readAgain && !this.stopped) {
      this.readAgain = false
      await this.reload()
    }
  }

  private async read(): Promise<void> {
    let snapshot: Snapshot
    try {
      snapshot = await readManifests(this.path)
    } catch (error) {
      const text = errorText(error)
      this.onReadError(text)
      if (text !== this.lastError) {
        this.logger.warn(this.current ? 'cannot read manifests; keeping the last good ones' : 'cannot read manifests', {path: this.path, error: text})
      }
      this.lastError = text
      return
    }
    if (this.lastError) this.logger.info('manifests readable again', {path: this.path})
    this.lastError = undefined
    const text = JSON.stringify(snapshot)
    if (this.current && text === this.currentText) return
    this.current = snapshot
    this.currentText = text
    this.logger.debug('manifests changed', {path: this.path, mappings: snapshot.mappings.length})
    for (const listener of this.listeners) listener()
  }
}
