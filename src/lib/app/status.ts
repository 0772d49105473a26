/** `smartnat status` as one library call: the host, the kernel's readability, and every Mapping's state, with the exit code monitoring sees. */
import {requiredTools} from '../backend/backend.js'
import {withForwardDrops} from '../backend/forward.js'
import {gatherHaStatus} from '../status/ha.js'
import {inspectHost} from '../inspect/inspection.js'
import {snapshotLoader} from '../source/oneshot.js'
import {gatherHostStatus, probeHost} from '../status/host.js'
import {toolVersionsFile} from '../host/tool-versions.js'
import {buildStatusReport, statusExitCode, type StatusReport} from '../status/report.js'
import {openHost} from './host.js'
import type {InspectRequest} from './inspect.js'

export type {StatusReport} from '../status/report.js'
export {DEFAULT_CONNTRACKD_CONFIG} from '../host/conntrackd.js'
export {toolVersionsPath} from '../host/tool-versions.js'

export interface StatusRequest extends InspectRequest {
  /** The lock file whose holder is shown. */
  lockPath: string
  /** The file that keeps the tools' versions (toolVersionsPath); none: each tool is asked. */
  toolVersions?: string
  /** Only Mappings of this namespace; all when absent. */
  namespace?: string
  /** With floating addresses: conntrackd's configuration file, and how long to watch its sync link for the peer. */
  conntrackd?: {config: string; sampleMs: number}
}

const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** Builds the report, changing nothing; its exit code says whether all is well (see STATUS_EXIT). */
export async function hostStatus(request: StatusRequest): Promise<{report: StatusReport; exitCode: number}> {
  // status changes nothing: the reads asked for together run as one shell (under --netns, one
  // `ip netns exec`), not one process each, which was most of a status's start on an empty host.
  const {runner, backend} = openHost(request.host, {batchReads: true})
  // None of these waits on another: on an empty host, one shell runs them all.
  const [inspected, {drops}, probes] = await Promise.all([
    inspectHost({runner, backend, loadSnapshot: snapshotLoader(request.source)}, request.settings),
    backend.forward({fix: false}),
    probeHost(runner, requiredTools(backend), request.toolVersions === undefined ? undefined : toolVersionsFile(request.toolVersions)),
  ])
  // As a sync would tell them: the Mappings programmed here are not served while forwarding drops.
  const inspection = {...inspected, plan: withForwardDrops(inspected.plan, drops)}
  const host = await gatherHostStatus(runner, {
    probes,
    forwardDrops: drops,
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
