/** Where a long-running smartnat gets its objects from: the API (list+watch) or files on disk. */
import type {Snapshot} from '../plan/model.js'

export interface SourceHealth {
  /** Every kind has been listed at least once since start. */
  synced: boolean
  /** The last error talking to the source, cleared by the next success. */
  lastError?: string
}

/** A cache of cluster objects kept current in the background. */
export interface SnapshotSource {
  start(): Promise<void>
  stop(): Promise<void>
  /** The objects as currently known (a consistent copy). */
  snapshot(): Snapshot
  /** Calls `listener` after any change; returns a function that unsubscribes. */
  onChange(listener: () => void): () => void
  health(): SourceHealth
}
