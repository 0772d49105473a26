/** What `status` and `explain` need from a backend: its Backend, a tracer, parts for drift, and counters. */
import type {Backend, BackendOptions} from '../backend/backend.js'
import type {BackendName} from '../backend/registry.js'
import {iptablesBackend} from '../backend/iptables/backend.js'
import {diffIptablesState, isEmptyChanges} from '../backend/iptables/diff.js'
import {tracePacket, type Trace, type TracePacket} from '../backend/iptables/trace.js'
import type {IptablesState} from '../backend/iptables/types.js'
import {nftablesBackend} from '../backend/nftables/backend.js'
import {diffNftState, isEmptyChanges as isEmptyNftChanges} from '../backend/nftables/diff.js'
import {traceNftPacket} from '../backend/nftables/trace.js'
import type {NftState} from '../backend/nftables/types.js'
import type {Runner} from '../host/runner.js'
import {readIptablesCounters} from '../status/counters.js'
import {iptablesParts} from './iptables-parts.js'
import {nftParts} from './nft-parts.js'
import type {Counter, PartsOf} from './parts.js'

export interface Inspector<State> {
  readonly backend: Backend<State>
  /** Follows a new connection's first packet through a state, desired or read back. */
  trace(state: State, packet: TracePacket): Trace
  parts: PartsOf<State>
  /** Whether a sync would write nothing to make `actual` match `desired`; then neither has drift. */
  inSync(desired: State, actual: State): boolean
  /** The kernel's counters, keyed like StatePart.counterKey; absent when the backend's rules keep none. */
  counters?: () => Promise<Map<string, Counter>>
}

/** Inspects the iptables + ipset + ip rule/route backend through `runner`. */
export function iptablesInspector(runner: Runner): Inspector<IptablesState> {
  return {
    backend: iptablesBackend(runner),
    trace: tracePacket,
    parts: iptablesParts,
    inSync: (desired, actual) => isEmptyChanges(diffIptablesState(desired, actual)),
    counters: () => readIptablesCounters(runner),
  }
}

/** Inspects the nftables backend through `runner`; its rules and elements carry no counters. */
export function nftablesInspector(runner: Runner, options: BackendOptions = {}): Inspector<NftState> {
  return {
    backend: nftablesBackend(runner, options),
    trace: traceNftPacket,
    parts: nftParts,
    inSync: (desired, actual) => isEmptyNftChanges(diffNftState(desired, actual)),
  }
}

/** The inspector of the backend called `name`. */
export function createInspector(name: BackendName, runner: Runner, options: BackendOptions = {}): Inspector<unknown> {
  return (name === 'nftables' ? nftablesInspector(runner, options) : iptablesInspector(runner)) as Inspector<unknown>
}
