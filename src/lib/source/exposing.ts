/**
 * A source whose snapshots carry the LoadBalancer Services smartnat serves as exposures
 * (plan/exposures.ts), and the Mappings waiting for an address or a port marked with why (allocate/pending.ts).
 */
import {withPendingAllocations, type PendingOptions} from '../allocate/pending.js'
import {DEFAULT_DYNAMIC_PORTS} from '../mapping/dynamic.js'
import {withServiceExposures} from '../plan/exposures.js'
import type {Snapshot} from '../plan/model.js'
import type {SnapshotSource} from './source.js'

/** `inner`, its snapshots with the served LoadBalancer Services among the Mappings and the waiting Mappings marked. */
export class ExposingSource implements SnapshotSource {
  private readonly pending: PendingOptions

  constructor(
    private readonly inner: SnapshotSource,
    private readonly defaultLoadBalancer: boolean,
    allocation: Partial<Pick<PendingOptions, 'dynamicPorts' | 'allocates'>> = {},
  ) {
    this.pending = {defaultLoadBalancer, dynamicPorts: allocation.dynamicPorts ?? DEFAULT_DYNAMIC_PORTS, allocates: allocation.allocates ?? true}
  }

  start(): Promise<void> {
    return this.inner.start()
  }

  stop(): Promise<void> {
    return this.inner.stop()
  }

  snapshot(): Snapshot {
    return withServiceExposures(withPendingAllocations(this.inner.snapshot(), this.pending), this.defaultLoadBalancer)
  }

  onChange(listener: () => void): () => void {
    return this.inner.onChange(listener)
  }

  health(): ReturnType<SnapshotSource['health']> {
    return this.inner.health()
  }
}
