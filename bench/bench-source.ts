/** A snapshot source for the benchmarks' watch loops: it always holds one snapshot, which the benchmark replaces. */
import type {Snapshot} from '../src/lib/plan/model.js'
import type {SnapshotSource} from '../src/lib/source/source.js'

export class BenchSource implements SnapshotSource {
  private listeners = new Set<() => void>()
  constructor(private current: Snapshot) {}
  async start(): Promise<void> {}
  async stop(): Promise<void> {}
  snapshot(): Snapshot {
    return this.current
  }
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }
  health() {
    return {synced: true}
  }
  /** Holds `snapshot` from now on and tells the loop, as a watch event would. */
  replace(snapshot: Snapshot): void {
    this.current = snapshot
    for (const listener of this.listeners) listener()
  }
}
