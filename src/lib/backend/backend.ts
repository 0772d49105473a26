/** What a backend is to everyone else (sync, explain, status): the interface each backend implements, and what they all share. */
import type {AdmittedMark} from '../host/conntrack.js'
import type {ToolName} from '../host/tools.js'
import {EGRESS_MARK, INTERFACE_MASK} from '../net/marks.js'
import type {NatModel} from '../plan/model.js'
import type {Counter, StatePart} from './parts.js'
import type {ApplyOptions, ApplyResult, FlushReport, ForwardReport, LegacyOptions, LegacyReport} from './result.js'
import type {Trace, TracePacket} from './trace-packet.js'

export type {ApplyOptions, ApplyResult, ChangedEndpoint, FlushReport, ForwardReport, LegacyOptions, LegacyRemoved, LegacyReport, WriteCounts} from './result.js'
export type {ForwardDrop} from './forward.js'
export {ApplyError} from './result.js'

/** A payload a backend feeds to one kernel tool, labelled with the command that reads it. */
export interface Payload {
  command: string
  text: string
}

/** One way of programming NAT into the kernel; `State` is its desired/actual state (comparable, printable). */
export interface Backend<State = unknown> {
  /** As --backend names it. */
  readonly name: string
  /** The kernel tools it drives, besides ip and conntrack which every backend needs. */
  readonly tools: readonly ToolName[]
  /** Pure: the state this NatModel needs in the kernel. */
  render(model: NatModel): State
  /** Makes the kernel match `desired`, writing only what differs; throws ApplyError (forceFull) on failure. */
  apply(desired: State, options?: ApplyOptions<State>): Promise<ApplyResult>
  /** What smartnat owns in the kernel right now. */
  read(): Promise<State>
  /** Removes everything smartnat owns, and nothing else. */
  flush(options: {dryRun: boolean}): Promise<FlushReport>
  /** Pure: the payloads that program `desired` into a host that has none of it (what a dry run prints). */
  payloads(desired: State): Payload[]
  /** Pure: how many rules `desired` holds (a metric). */
  ruleCount(desired: State): number
  /** Pure: the Mappings (`namespace/name`) `state` programs, as its per-Mapping comments name them (the mass-removal guard). */
  programmedMappings(state: State): ReadonlySet<string>
  /**
   * Lets smartnat's connections through the host's other forward filters where the backend may
   * (with `fix`), then names the chains that still drop them; never throws for what it cannot read.
   */
  forward(options: {fix: boolean}): Promise<ForwardReport>
  /** What explain and status look at in a state. */
  readonly inspect: Inspector<State>
}

/** How explain and status look into a backend's state, desired or read back; all pure but `counters`. */
export interface Inspector<State> {
  /** Follows a new connection's first packet through a state. */
  trace(state: State, packet: TracePacket): Trace
  /** Cuts a state into parts, attributing them with the help of the desired model, for drift per Mapping. */
  parts(state: State, model: NatModel): StatePart[]
  /** Whether a sync would write nothing to make `actual` match `desired`; then neither has drift. */
  inSync(desired: State, actual: State): boolean
  /** What smartnat owns in the kernel with its counters (keyed like StatePart.counterKey), read at once; absent when the backend's rules keep none. */
  readCounted?: () => Promise<{state: State; counters: Map<string, Counter>}>
}

/** What the Go SmartNat controller left on a host: an iptables layout, whatever backend smartnat runs. */
export interface LegacyLayout {
  /** Removes what the Go controller installed, and nothing else; a dry run only reports it. */
  flush(options: LegacyOptions & {dryRun: boolean}): Promise<LegacyReport>
}

export interface BackendOptions {
  /**
   * The nftables backend accepts smartnat's connections in iptables' FORWARD, whose DROP policy its
   * own table cannot overrule (default true; --no-forward-accept). The iptables backend always does.
   */
  forwardAccept?: boolean
  /** How a backend that does not drive iptables itself removes the Go controller's layout (ApplyOptions.legacy). */
  legacyLayout?: LegacyLayout
  /**
   * A daemon renders one model after another: keep the parts of every render from the first on, so
   * that its first change renders only what changed, as the others do (default false: a one-shot
   * command renders once, and parts would cost it more than they save).
   */
  rendersAgain?: boolean
  /**
   * A daemon writes change after change: the nftables backend keeps one `nft -i` open for element
   * changes (default false: a one-shot command starts `nft -f` as needed).
   */
  longLived?: boolean
}

/**
 * The connection mark both backends set on the connections their DNAT admits: the bits of the
 * interface it came in on, never the egress bit. Conntrack cleanup recognizes smartnat's entries by it.
 */
export const ADMITTED_CONNECTION_MARK: AdmittedMark = {any: INTERFACE_MASK, none: EGRESS_MARK}

/** Every tool a host needs to run `backend`: ip and conntrack, which every backend drives, and its own. */
export function requiredTools(backend: Pick<Backend, 'tools'>): ToolName[] {
  return ['ip', ...backend.tools, 'conntrack']
}
