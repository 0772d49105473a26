/** One pass of the pipeline: snapshot + host -> plan -> render -> apply -> conntrack cleanup. */
import type {ApplyResult, Backend, ChangedEndpoint, ForwardReport, Payload} from '../backend/backend.js'
import {forwardedTrafficDropped} from '../backend/forward.js'
import {deleteFlowsFromEndpoints, deleteStaleNatFlows, type NatFlowTarget} from '../host/conntrack.js'
import {readHostInterfaces} from '../host/interfaces.js'
import type {Runner} from '../host/runner.js'
import {checkIpForwarding, relaxReversePathFilter, type RpFilterChange} from '../host/sysctl.js'
import {assertToolsPresent, checkTools} from '../host/tools.js'
import type {Protocol} from '../mapping/types.js'
import {compareIpv4, parseIpv4, type Ipv4} from '../net/ipv4.js'
import type {HostInfo, NatModel, Plan, Snapshot} from '../plan/model.js'
import type {PlanMemo} from '../plan/candidates.js'
import {withHostFault} from '../plan/faults.js'
import {plan} from '../plan/plan.js'
import type {SyncSettings} from './settings.js'

/** What a dry run shows: the verdicts and the payloads a real sync would apply to an empty host. */
export interface DryRunReport {
  plan: Plan
  payloads: Payload[]
}

/** Plans and renders without touching the kernel. */
export function dryRun<State>(snapshot: Snapshot, host: HostInfo, settings: SyncSettings, backend: Pick<Backend<State>, 'render' | 'payloads'>): DryRunReport {
  const result = plan(snapshot, host, settings.plan)
  return {plan: result, payloads: backend.payloads(backend.render(result.model))}
}

export interface SyncReport {
  /** The objects this pass planned from. */
  snapshot: Snapshot
  plan: Plan
  host: HostInfo
  applied: ApplyResult
  /** What was done to let forwarded traffic through, and the chains that still drop it (its Mappings' verdicts say so too). */
  forward: ForwardReport
  rpFilter: RpFilterChange[]
  conntrackDeleted: number
  /** Rules in the state that was applied. */
  rulesProgrammed: number
  /** The backend state this pass applied: what the kernel holds now unless someone else changed it. */
  kernelState?: unknown
}

export interface SyncDeps {
  runner: Runner
  backend: Backend
}

/** Checks the host's prerequisites: the tools `backend` drives, conntrack and ip, and IPv4 forwarding on. */
export async function checkPrerequisites(runner: Runner, backend: Pick<Backend, 'tools'>): Promise<void> {
  assertToolsPresent(await checkTools(runner, ['ip', ...backend.tools, 'conntrack']))
  await checkIpForwarding(runner)
}

/** Reads this host's external interfaces and makes their reverse-path filter loose. */
export async function prepareHost(runner: Runner, settings: SyncSettings): Promise<{host: HostInfo; rpFilter: RpFilterChange[]}> {
  const host = await readHostInterfaces(runner, settings.interfacesPattern)
  const rpFilter = await relaxReversePathFilter(
    runner,
    host.interfaces.map((i) => i.name),
  )
  return {host, rpFilter}
}

export interface SyncOptions {
  /** Rewrite everything smartnat owns (after a failed apply). */
  full?: boolean
  /** The `kernelState` of the last pass, trusted instead of reading the kernel (see ApplyOptions.assumeActual). */
  assumeActual?: unknown
  /** Check tools and IPv4 forwarding first (default); a daemon does it once at start. */
  checkPrerequisites?: boolean
  /** Resolutions kept from earlier passes (a daemon keeps one for its lifetime). */
  planMemo?: PlanMemo
}

/** A named stage of a sync, so a caller can show progress (listr2 on a TTY, plain lines otherwise). */
export interface SyncStep {
  title: string
  run(): Promise<void>
}

/** The stages of one sync pass, in order; run them all, then call `report()`. */
export function syncSteps(
  deps: SyncDeps,
  loadSnapshot: () => Promise<Snapshot>,
  settings: SyncSettings,
  options: SyncOptions = {},
): {steps: SyncStep[]; report(): SyncReport} {
  let snapshot: Snapshot | undefined
  let prepared: {host: HostInfo; rpFilter: RpFilterChange[]} | undefined
  let planned: Plan | undefined
  let kernelRead: Promise<unknown> | undefined
  let applied: ApplyResult | undefined
  let forward: ForwardReport | undefined
  let kernelState: unknown
  let conntrackDeleted = 0
  let rulesProgrammed = 0
  const steps: SyncStep[] = [
    ...(options.checkPrerequisites === false ? [] : [{title: 'Check host prerequisites', run: () => checkPrerequisites(deps.runner, deps.backend)}]),
    {title: 'Read Mappings, Services and EndpointSlices', run: async () => void (snapshot = await loadSnapshot())},
    {title: 'Read external interfaces', run: async () => void (prepared = await prepareHost(deps.runner, settings))},
    {
      title: 'Plan',
      run: async () => {
        // The kernel's state comes from processes: read it while this process plans.
        if (options.assumeActual === undefined || options.full) kernelRead = readAhead(deps.backend)
        planned = plan(snapshot!, prepared!.host, settings.plan, options.planMemo)
      },
    },
    {
      title: `Apply (${deps.backend.name})`,
      run: async () => {
        const desired = deps.backend.render(planned!.model)
        rulesProgrammed = deps.backend.ruleCount(desired)
        applied = await deps.backend.apply(desired, {
          full: options.full ?? false,
          ...(options.assumeActual === undefined ? {} : {assumeActual: options.assumeActual}),
          ...(kernelRead === undefined ? {} : {kernelRead}),
        })
        kernelState = desired
      },
    },
    {
      title: 'Check that forwarded traffic passes',
      run: async () => {
        forward = await deps.backend.forward({fix: true})
        // Rules written to let traffic through are kernel writes of this pass like any other.
        if (forward.written > 0) {
          const {written} = applied!
          applied = {...applied!, changed: true, written: {...written, rules: written.rules + forward.written}}
        }
        // The rules are in place, but no packet gets through them: the Mappings must not read as served.
        if (forward.drops.length > 0) planned = withHostFault(planned!, forwardedTrafficDropped(forward.drops))
      },
    },
    {
      title: 'Drop connections to vanished targets',
      run: async () => {
        if (applied!.changedEndpoints.length > 0) {
          conntrackDeleted += await deleteStaleNatFlows(deps.runner, flowTargets(applied!.changedEndpoints, planned!.model))
        }
        const gone = vanishedPods(snapshot!, planned!, prepared!.host)
        if (gone.length > 0) conntrackDeleted += await deleteFlowsFromEndpoints(deps.runner, gone)
      },
    },
  ]
  return {
    steps,
    report: () => ({
      snapshot: snapshot!,
      plan: planned!,
      host: prepared!.host,
      applied: applied!,
      forward: forward!,
      rpFilter: prepared!.rpFilter,
      conntrackDeleted,
      rulesProgrammed,
      kernelState,
    }),
  }
}

/**
 * Starts `backend.read()` for an apply to come (ApplyOptions.kernelRead). Its failure is reported by
 * that apply, so it must not count as unhandled in the meantime.
 */
export function readAhead<State>(backend: Pick<Backend<State>, 'read'>): Promise<State> {
  const read = backend.read()
  read.catch(() => undefined)
  return read
}

/** Applies one snapshot to the kernel: the whole desired state, writing only what differs. */
export async function syncOnce(deps: SyncDeps, loadSnapshot: () => Promise<Snapshot>, settings: SyncSettings, options: SyncOptions = {}): Promise<SyncReport> {
  const {steps, report} = syncSteps(deps, loadSnapshot, settings, options)
  for (const step of steps) await step.run()
  return report()
}

/** Each endpoint whose rule changed, with the target its connections may keep (none when it is gone). */
function flowTargets(changed: ChangedEndpoint[], model: NatModel): NatFlowTarget[] {
  const current = new Map<string, {ip: Ipv4; port: number}>()
  for (const mapping of model.mappings) {
    for (const e of mapping.endpoints) current.set(`${e.address} ${e.protocol} ${e.port}`, {ip: e.targetIP, port: e.targetPort})
  }
  return changed.map((e) => {
    const target = current.get(`${e.address} ${e.protocol} ${e.port}`)
    return {address: e.address as Ipv4, protocol: e.protocol as Protocol, port: e.port, ...(target ? {target} : {})}
  })
}

/**
 * Pods this host served before and serves no more. A Mapping's status remembers, per address
 * of this host, the pods it was configured with; where kube-proxy runs on this host, its
 * connections to a pod that left are DNATed straight to that pod and would hang.
 */
export function vanishedPods(snapshot: Snapshot, planned: Plan, host: HostInfo): Ipv4[] {
  const own = new Set<string>(host.interfaces.flatMap((i) => i.addresses.map((a) => a.address)))
  const current = new Set<string>()
  for (const verdict of planned.verdicts) {
    for (const {podIPs} of Object.values(verdict.configuredAddresses)) for (const ip of podIPs) current.add(ip)
  }
  const gone = new Set<Ipv4>()
  for (const mapping of snapshot.mappings) {
    for (const [address, configured] of Object.entries(mapping.status?.configuredAddresses ?? {})) {
      if (!own.has(address)) continue
      for (const text of configured?.podIPs ?? []) {
        const ip = parseIpv4(text)
        if (ip && !current.has(ip)) gone.add(ip)
      }
    }
  }
  return [...gone].sort(compareIpv4)
}
