/**
 * What a daemon's conntrack cleanup keeps from one pass to the next, brought up to date from the
 * Mappings that changed (a kept plan hands over the very same NatMapping objects where nothing
 * changed), so that a pass after one change looks at that change and not at every Mapping.
 */
import type {Ipv4} from '../net/ipv4.js'
import {changedObjects} from '../plan/changed.js'
import type {NatMapping, NatModel} from '../plan/model.js'
import {VanishedPodsLedger} from './vanished-pods.js'

export class CleanupMemo {
  /** Who names and serves each pod. */
  readonly vanishedPods = new VanishedPodsLedger()
  private mappings: readonly NatMapping[] = []
  /** How many of the model's Mappings are in mode direct: most clusters have none, and then no Service's pods need listing. */
  private direct = 0
  /** The model's Mappings on each external address. */
  private readonly byAddress = new Map<Ipv4, Set<NatMapping>>()

  /** Takes `model` as the one the next questions are about. */
  follow(model: NatModel): void {
    const {added, removed} = changedObjects(this.mappings, model.mappings)
    for (const mapping of removed) this.index(mapping, -1)
    for (const mapping of added) this.index(mapping, 1)
    this.mappings = model.mappings
  }

  /** Whether the model has a Mapping in mode direct. */
  hasDirect(): boolean {
    return this.direct > 0
  }

  /** The model's Mappings with an endpoint on one of `addresses`. */
  mappingsOn(addresses: Iterable<string>): NatMapping[] {
    const found = new Set<NatMapping>()
    for (const address of addresses) for (const mapping of this.byAddress.get(address as Ipv4) ?? []) found.add(mapping)
    return [...found]
  }

  private index(mapping: NatMapping, by: 1 | -1): void {
    if (mapping.groups !== undefined) this.direct += by
    for (const {address} of mapping.addresses) {
      const on = this.byAddress.get(address) ?? new Set<NatMapping>()
      if (by > 0) on.add(mapping)
      else on.delete(mapping)
      if (on.size === 0) this.byAddress.delete(address)
      else this.byAddress.set(address, on)
    }
  }
}
