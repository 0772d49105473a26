/** What `smartnat sync` returns: each Mapping's verdict and what was (or would be) written, in a stable JSON shape. */
import type {LegacyRemoved, Payload, WriteCounts} from '../backend/backend.js'
import {forwardDropProblem} from '../backend/forward.js'
import {interfaceFaultProblem} from '../plan/interfaces.js'
import type {Protocol} from '../mapping/types.js'
import type {MappingVerdict, Plan} from '../plan/model.js'
import type {DryRunReport} from '../sync/dry-run.js'
import type {SyncReport} from '../sync/once.js'
import type {PublishResult} from '../sync/publish.js'

/** One Mapping's verdict, as scripts see it. */
export interface MappingSummary {
  namespace: string
  name: string
  valid: boolean
  /** null when valid; otherwise why the Mapping is not configured. */
  reason: string | null
  configuredAddresses: Record<string, {podIPs: string[]}>
  notLocalAddresses: string[]
  /** Addresses on this host that it cannot serve, each with the reason. */
  faults: Record<string, string>
  /** Mode direct: the ports whose Service port has no endpoint, where new connections are refused; absent when none. */
  unservedPorts?: {protocol: Protocol; port: number}[]
  /** Its deletionTimestamp, when it is being deleted (finalizers hold it) and no longer served; `reason` says so. */
  deleting?: string
}

/** The outcome of a sync or a dry run. */
export interface SyncOutput {
  dryRun: boolean
  mappings: MappingSummary[]
  configured: number
  invalid: number
  /** Valid Mappings with an address this host has but cannot serve (see `faults`). */
  faulty: number
  /** What keeps this host from serving some addresses: an interface it cannot route replies out of, a forward chain that drops. */
  faults: string[]
  changed?: boolean
  written?: WriteCounts
  conntrackDeleted?: number
  /** Why dropping connections to vanished targets failed (the rules were applied). */
  conntrackError?: string
  statusesWritten?: number
  eventsCreated?: number
  /** Programmed Mappings this sync removed although they were more than --max-removal (with --allow-mass-removal). */
  massRemoval?: {programmed: number; removed: string[]}
  /** With --migrate: what of the Go controller's this sync removed. */
  legacyRemoved?: LegacyRemoved
  scripts?: Payload[]
}

/** The stable JSON shape of a verdict. */
function summarizeVerdict(v: MappingVerdict): MappingSummary {
  return {
    namespace: v.namespace,
    name: v.name,
    valid: v.valid,
    reason: v.valid ? null : v.invalid,
    configuredAddresses: v.configuredAddresses,
    notLocalAddresses: v.notLocalAddresses,
    faults: v.faults ?? {},
    ...(v.unservedPorts ? {unservedPorts: v.unservedPorts.map((p) => ({...p}))} : {}),
    ...(v.deleting === undefined ? {} : {deleting: v.deleting}),
  }
}

/** A dry run's outcome: verdicts and the scripts a real sync would apply. */
export function dryRunOutput(report: DryRunReport): SyncOutput {
  const mappings = report.plan.verdicts.map(summarizeVerdict)
  return {dryRun: true, mappings, ...counts(mappings), faults: interfaceFaults(report.plan), scripts: report.payloads}
}

/** An applied sync's outcome, with what was written back to the API when it was. */
export function appliedOutput(report: SyncReport, published: PublishResult | undefined): SyncOutput {
  const mappings = report.plan.verdicts.map(summarizeVerdict)
  const {changed, written} = report.applied
  return {
    dryRun: false,
    mappings,
    ...counts(mappings),
    faults: [...interfaceFaults(report.plan), ...report.forward.drops.map(forwardDropProblem)],
    changed,
    written,
    conntrackDeleted: report.conntrackDeleted,
    ...(report.conntrackError === undefined ? {} : {conntrackError: report.conntrackError}),
    ...(published ? {statusesWritten: published.status.patched, eventsCreated: published.eventsCreated} : {}),
    ...(report.massRemoval ? {massRemoval: report.massRemoval} : {}),
    ...(report.applied.legacy ? {legacyRemoved: report.applied.legacy} : {}),
  }
}

function counts(mappings: MappingSummary[]): {configured: number; invalid: number; faulty: number} {
  return {
    configured: mappings.filter((m) => m.valid && Object.keys(m.configuredAddresses).length > 0).length,
    // Being deleted is no fault of the spec: --strict must not fail a cron sync for it.
    invalid: mappings.filter((m) => !m.valid && m.deleting === undefined).length,
    faulty: mappings.filter((m) => Object.keys(m.faults).length > 0).length,
  }
}

function interfaceFaults(planned: Plan): string[] {
  return planned.interfaceFaults.map((fault) => interfaceFaultProblem(fault.reason))
}
