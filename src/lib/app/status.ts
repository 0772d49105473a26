/** `smartnat status` as one library call: the host, the kernel's readability, and every Mapping's state, with the exit code monitoring sees. */
import {requiredTools} from '../backend/backend.js'
import {withForwardDrops} from '../backend/forward.js'
import {gatherHaStatus} from '../status/ha.js'
import {gatherHostStatus} from '../status/host.js'
import {buildStatusReport, statusExitCode, type StatusReport} from '../status/report.js'
import {openInspection, type InspectRequest} from './inspect.js'

export type {StatusReport} from '../status/report.js'
export {DEFAULT_CONNTRACKD_CONFIG} from '../host/conntrackd.js'

export interface StatusRequest extends InspectRequest {
  /** The lock file whose holder is shown. */
  lockPath: string
  /** Only Mappings of this namespace; all when absent. */
  namespace?: string
  /** With floating addresses: conntrackd's configuration file, and how long to watch its sync link for the peer. */
  conntrackd?: {config: string; sampleMs: number}
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Builds the report, changing nothing; its exit code says whether all is well (see STATUS_EXIT). */
export async function hostStatus(request: StatusRequest): Promise<{report: StatusReport; exitCode: number}> {
  const {runner, backend, inspection: inspected} = await openInspection(request)
  const {drops} = await backend.forward({fix: false})
  // As a sync would tell them: the Mappings programmed here are not served while forwarding drops.
  const inspection = {...inspected, plan: withForwardDrops(inspected.plan, drops)}
  const host = await gatherHostStatus(runner, {
    forwardDrops: drops,
    tools: requiredTools(backend),
    lockPath: request.lockPath,
    host: inspection.host,
    model: inspection.plan.model,
    interfaceFaults: inspection.plan.interfaceFaults,
  })
  const floating = request.settings.floating ?? []
  const ha =
    floating.length > 0 && request.conntrackd
      ? await gatherHaStatus(runner, {floating, conntrackdConfig: request.conntrackd.config, sampleMs: request.conntrackd.sampleMs, sleep: wait})
      : undefined
  const report = buildStatusReport(inspection, host, request.namespace === undefined ? {} : {namespace: request.namespace}, ha)
  return {report, exitCode: statusExitCode(report)}
}
