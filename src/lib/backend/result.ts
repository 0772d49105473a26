/** What a backend reports back to the sync: the outcome of an apply or a flush, and how an apply failed. */
import type {Protocol} from '../mapping/types.js'
import type {ForwardDrop} from './forward.js'

export interface ApplyOptions<State = unknown> {
  /** Rewrite everything smartnat owns even where it already matches (the sync after a failed apply); the kernel is always read. */
  full?: boolean
  /**
   * What the kernel holds, as this caller applied it last time: diffed against instead of reading the
   * kernel back. Only for a caller whose every apply since has succeeded; its periodic reads repair drift.
   */
  assumeActual?: State
  /**
   * The kernel's state as the caller started reading it (`Backend.read()`), while it planned: used
   * instead of reading again when the kernel must be read. A rejection fails the apply's read step.
   */
  kernelRead?: Promise<State>
  /** Also remove what the Go SmartNat controller installed (sync --migrate), in the same transactions where the backend can. */
  legacy?: LegacyOptions
}

/** Where to look for the Go controller's leftovers beyond the kernel. */
export interface LegacyOptions {
  /** The iproute2 file it registered its routing tables in (/etc/iproute2/rt_tables). */
  rtTables: string
}

/** An external endpoint whose DNAT rule an apply removed or pointed elsewhere. */
export interface ChangedEndpoint {
  /** External address: `198.18.0.10`. */
  address: string
  protocol: Protocol
  port: number
  /** Where connections were sent before: `198.19.1.10:8080`. */
  oldTarget: string
}

export interface WriteCounts {
  sets: number
  chains: number
  rules: number
  /** `ip rule` and `ip route` changes. */
  routes: number
}

export interface ApplyResult {
  /** False when desired already equalled actual and nothing was written. */
  changed: boolean
  written: WriteCounts
  /** Conntrack entries DNATed to these old targets no longer match any rule and should be deleted. */
  changedEndpoints: ChangedEndpoint[]
  /** With ApplyOptions.legacy: what of the Go controller's was removed. */
  legacy?: LegacyRemoved
}

/** A failed apply: which step failed and why; the next apply must be a full one. */
export class ApplyError extends Error {
  /** The sync reads this and passes `full: true` next time. */
  readonly forceFull = true

  constructor(
    readonly step: string,
    message: string,
    options?: {cause?: unknown},
  ) {
    super(`${step}: ${message}`, options)
    this.name = 'ApplyError'
  }
}

/** What a backend did to let smartnat's forwarded connections through, and where they are still dropped. */
export interface ForwardReport {
  /** Rules written outside smartnat's own rules to accept its connections (the nftables backend's in iptables' FORWARD). */
  written: number
  /** Chains that drop smartnat's connections after that. */
  drops: ForwardDrop[]
}

export interface FlushReport {
  dryRun: boolean
  /** False when there was nothing of smartnat's left to remove. */
  changed: boolean
  /** What was (or, in a dry run, would be) removed, one human-readable line each. */
  removed: {
    jumps: string[]
    chains: string[]
    sets: string[]
    ipRules: string[]
    routes: string[]
  }
}

/** What a removal of the Go controller's layout takes away, one human-readable line each. */
export type LegacyRemoved = FlushReport['removed'] & {
  /** Its rules in a chain that smartnat uses too, the chain itself kept. */
  rules: string[]
  /** Its lines in rt_tables. */
  rtTables: string[]
}

/** A flush of the Go controller's layout (flush --legacy). */
export interface LegacyReport extends FlushReport {
  removed: LegacyRemoved
}
