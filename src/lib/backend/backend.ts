/** What the sync needs from a backend: render a NatModel, apply it, read it back, flush it. */
import type {AdmittedMark} from '../host/conntrack.js'
import {CommandError, type Runner} from '../host/runner.js'
import type {ToolName} from '../host/tools.js'
import {EGRESS_MARK, INTERFACE_MASK} from '../net/marks.js'
import type {NatModel} from '../plan/model.js'
import {routingPayload} from '../routing/payload.js'
import {forwardDrops} from './forward.js'
import {ApplyError, type ApplyOptions, type ApplyResult, type FlushReport, type ForwardReport} from './result.js'
import {applyIptables} from './iptables/apply.js'
import {flushIptables} from './iptables/flush.js'
import {iptablesMappings} from './iptables/mappings.js'
import {readIptablesState} from './iptables/read.js'
import {renderIptables, renderRestoreScripts} from './iptables/render.js'
import type {IptablesState} from './iptables/types.js'
import {nftablesBackend} from './nftables/backend.js'

export type {ApplyOptions, ApplyResult, ChangedEndpoint, FlushReport, ForwardReport, WriteCounts} from './result.js'
export type {ForwardDrop} from './forward.js'
export {ApplyError} from './result.js'

/** A payload a backend feeds to one kernel tool, labelled with the command that reads it. */
export interface Payload {
  command: string
  text: string
}

/** One way of programming NAT into the kernel; `State` is its desired/actual state (comparable, printable). */
export interface Backend<State = unknown> {
  readonly name: BackendName
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
}

export interface BackendOptions {
  /**
   * The nftables backend accepts smartnat's connections in iptables' FORWARD, whose DROP policy its
   * own table cannot overrule (default true; --no-forward-accept). The iptables backend always does.
   */
  forwardAccept?: boolean
}

/**
 * The connection mark both backends set on the connections their DNAT admits: the bits of the
 * interface it came in on, never the egress bit. Conntrack cleanup recognizes smartnat's entries by it.
 */
export const ADMITTED_CONNECTION_MARK: AdmittedMark = {any: INTERFACE_MASK, none: EGRESS_MARK}

export const BACKEND_NAMES = ['iptables', 'nftables'] as const
export type BackendName = (typeof BACKEND_NAMES)[number]

/** The backend called `name`, running its commands through `runner`. */
export function createBackend(name: BackendName, runner: Runner, options: BackendOptions = {}): Backend {
  return (name === 'nftables' ? nftablesBackend(runner, options) : iptablesBackend(runner)) as Backend
}

/** The iptables + ipset + ip rule/route backend, running its commands through `runner`. */
export function iptablesBackend(runner: Runner): Backend<IptablesState> {
  return {
    name: 'iptables',
    tools: ['iptables', 'ipset'],
    render: renderIptables,
    apply: (desired, options) => applyIptables(runner, desired, options),
    read: () => readIptablesState(runner),
    flush: (options) => flushIptables(runner, options),
    payloads(desired) {
      const {ipset, iptables} = renderRestoreScripts(desired)
      return [
        {command: 'ipset restore -exist', text: ipset},
        {command: 'iptables-restore --noflush --wait', text: iptables},
        routingPayload(desired),
      ]
    },
    ruleCount: (desired) =>
      Object.values(desired.tables).reduce((n, table) => n + table.jumps.length + table.chains.reduce((m, c) => m + c.rules.length, 0), 0),
    programmedMappings: iptablesMappings,
    // Its jump into SNM-FORWARD goes first in iptables' FORWARD: only native nft chains are left to check.
    forward: async () => ({written: 0, drops: await forwardDrops(runner, {backend: 'iptables'})}),
  }
}

/**
 * Flushes what any backend owns, so a host that switched backends keeps nothing of either.
 * A backend whose tool is not installed cannot have installed anything.
 */
export function everyBackend(runner: Runner): Pick<Backend, 'flush'> {
  return {
    async flush(options) {
      const reports: FlushReport[] = []
      for (const name of BACKEND_NAMES) {
        try {
          reports.push(await createBackend(name, runner).flush(options))
        } catch (error) {
          if (!(error instanceof ApplyError && notInstalled(error.cause)) && !notInstalled(error)) throw error
        }
      }
      return mergeFlushReports(options.dryRun, reports)
    },
  }
}

function notInstalled(error: unknown): boolean {
  return error instanceof CommandError && error.exitCode === undefined
}

function mergeFlushReports(dryRun: boolean, reports: FlushReport[]): FlushReport {
  // Both backends remove the same ip rules and routes; each is named once.
  const union = (kind: keyof FlushReport['removed']) => [...new Set(reports.flatMap((r) => r.removed[kind]))]
  return {
    dryRun,
    changed: reports.some((r) => r.changed),
    removed: {jumps: union('jumps'), chains: union('chains'), sets: union('sets'), ipRules: union('ipRules'), routes: union('routes')},
  }
}
