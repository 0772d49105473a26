/** What `status` and `explain` need from a backend: its Backend, a tracer, parts for drift, and counters. */
import {iptablesBackend, type Backend} from '../backend/backend.js'
import {tracePacket, type Trace, type TracePacket} from '../backend/iptables/trace.js'
import type {IptablesState} from '../backend/iptables/types.js'
import type {Runner} from '../host/runner.js'
import {readIptablesCounters} from '../status/counters.js'
import {iptablesParts} from './iptables-parts.js'
import type {Counter, PartsOf} from './parts.js'

export interface Inspector<State> {
  readonly backend: Backend<State>
  /** Follows a new connection's first packet through a state, desired or read back. */
  trace(state: State, packet: TracePacket): Trace
  parts: PartsOf<State>
  /** The kernel's counters, keyed like StatePart.counterKey. */
  counters(): Promise<Map<string, Counter>>
}

/** Inspects the iptables + ipset + ip rule/route backend through `runner`. */
export function iptablesInspector(runner: Runner): Inspector<IptablesState> {
  return {
    backend: iptablesBackend(runner),
    trace: tracePacket,
    parts: iptablesParts,
    counters: () => readIptablesCounters(runner),
  }
}
