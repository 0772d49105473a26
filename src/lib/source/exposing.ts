/** A source whose snapshots carry the LoadBalancer Services smartnat serves as exposures (plan/exposures.ts). */
import {withServiceExposures} from '../plan/exposures.js'
import type {Snapshot} from '../plan/model.js'
import type {SnapshotSource} from './source.js'

/** `inner`, its snapshots with the served LoadBalancer Services among the Mappings. */
export class ExposingSource implements SnapshotSource {
  constructor(
    private readonly inner: SnapshotSource,
    private readonly defaultLoadBalancer: boolean,
  ) {}

  start(): Promise<void> {
    return this.inner.start()
  }

  stop(): Promise<void> {
    return this.inner.stop()
  }

  snapshot(): Snapshot {
    return withServiceExposures(this.inner.snapshot(), this.defaultLoadBalancer)
  }

  onChange(listener: () => void): () => void {
    return this.inner.onChange(listener)
  }

  health(): ReturnType<SnapshotSource['health']> {
    return this.inner.health()
  }
}
