/** `smartnat status` as data: the host, the kernel's readability, shared drift, and every Mapping's state. */
import {sharedDrift} from '../inspect/drift.js'
import {driftLines, mappingFacts, type MappingFacts, type MappingState} from '../inspect/facts.js'
import {kernelSummary, type Inspection, type KernelSummary} from '../inspect/inspection.js'
import type {HaStatus} from './ha.js'
import type {HostStatus} from './host.js'

export interface StatusReport {
  backend: string
  /** Whether the backend's rules keep packet counters; when not, every Mapping's packets and bytes are null. */
  countsPackets: boolean
  host: HostStatus
  kernel: KernelSummary
  /** Drift in what every Mapping relies on (jumps, marks, sets' options, reply routing), as `where: text`. */
  shared: {missing: string[]; unexpected: string[]}
  mappings: MappingFacts[]
  summary: Record<MappingState, number> & {total: number}
  /** With floating addresses configured (an HA pair): their roles here and conntrackd's sync. */
  ha?: HaStatus
}

/**
 * Exit codes of `smartnat status`, for monitoring. When several apply, a failed prerequisite (4)
 * wins over an unreadable kernel (5), which wins over drift (3): each can be the cause of the next;
 * an HA pair's broken connection sync (6) comes last, as the rules matter first.
 */
export const STATUS_EXIT = {
  ok: 0,
  drift: 3,
  prerequisites: 4,
  kernelUnreadable: 5,
  haSync: 6,
} as const

/** Builds the report for the Mappings of one namespace, or of all when `namespace` is undefined. */
export function buildStatusReport(inspection: Inspection<unknown>, host: HostStatus, filter: {namespace?: string} = {}, ha?: HaStatus): StatusReport {
  const mappings = mappingFacts(inspection).filter((m) => filter.namespace === undefined || m.namespace === filter.namespace)
  const summary = {total: mappings.length, configured: 0, invalid: 0, deleting: 0, drifted: 0, faulty: 0, 'not-local': 0, unverified: 0, stale: 0}
  for (const m of mappings) summary[m.state]++
  return {
    backend: inspection.backend,
    countsPackets: inspection.countsPackets,
    host,
    kernel: kernelSummary(inspection.kernel),
    shared: driftLines(inspection.drift && sharedDrift(inspection.drift)),
    mappings,
    summary,
    ...(ha === undefined ? {} : {ha}),
  }
}

/** Whether the kernel differs from the desired state anywhere the report looks. */
export function hasDrift(report: StatusReport): boolean {
  return (
    report.shared.missing.length > 0 ||
    report.shared.unexpected.length > 0 ||
    report.mappings.some((m) => m.drift.missing.length > 0 || m.drift.unexpected.length > 0)
  )
}

/** The exit code monitoring sees; see STATUS_EXIT. */
export function statusExitCode(report: StatusReport): number {
  if (report.host.problems.length > 0) return STATUS_EXIT.prerequisites
  if (!report.kernel.readable) return STATUS_EXIT.kernelUnreadable
  if (hasDrift(report)) return STATUS_EXIT.drift
  if (report.ha && !report.ha.sync.healthy) return STATUS_EXIT.haSync
  return STATUS_EXIT.ok
}
