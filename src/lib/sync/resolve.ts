/**
 * Resolve: the cluster's objects and this host's external interfaces, planned into a NatModel and
 * a verdict per Mapping. Sync, watch, status and explain all start with it.
 */
import {readHostInterfaces} from '../host/interfaces.js'
import type {Runner} from '../host/runner.js'
import {withFloatingAddresses} from '../plan/floating.js'
import type {PlanMemo} from '../plan/memo.js'
import type {HostInfo, Plan, Snapshot} from '../plan/model.js'
import {plan} from '../plan/plan.js'
import type {SyncSettings} from './settings.js'
import type {SyncStep} from './step.js'

/** Where a resolve reads from. */
export interface ResolveInputs {
  loadSnapshot: () => Promise<Snapshot>
  /** This host's external interfaces: read from the kernel, or assumed for a dry run meant for another host. */
  readHost: () => Promise<HostInfo>
}

/** What a resolve found and made of it. */
export interface Resolved {
  snapshot: Snapshot
  host: HostInfo
  plan: Plan
}

export interface ResolveOptions {
  /** Resolutions kept from earlier passes (a daemon keeps one for its lifetime). */
  planMemo?: PlanMemo
  /** Called just before planning: work started here runs in other processes while this one plans. */
  beforePlan?: () => void
}

/** The external interfaces `ip` shows on this host, those whose name matches the settings' pattern, with the configured floating addresses. */
export function hostInterfaces(runner: Runner, settings: SyncSettings): () => Promise<HostInfo> {
  return async () => withFloatingAddresses(await readHostInterfaces(runner, settings.interfacesPattern), settings.floating ?? [])
}

/** Reads the snapshot and the host at once, then plans; should both reads fail, the source's error is thrown, as a sync would. */
export async function resolve(inputs: ResolveInputs, settings: SyncSettings, options: ResolveOptions = {}): Promise<Resolved> {
  const [snapshot, host] = await Promise.allSettled([inputs.loadSnapshot(), inputs.readHost()])
  if (snapshot.status === 'rejected') throw snapshot.reason
  if (host.status === 'rejected') throw host.reason
  options.beforePlan?.()
  return {snapshot: snapshot.value, host: host.value, plan: plan(snapshot.value, host.value, settings.plan, options.planMemo)}
}

/** The same resolve as steps run one after the other, so a caller can show each; `resolved()` once they all ran. */
export function resolveSteps(inputs: ResolveInputs, settings: SyncSettings, options: ResolveOptions = {}): {steps: SyncStep[]; resolved(): Resolved} {
  let snapshot: Snapshot | undefined
  let host: HostInfo | undefined
  let planned: Plan | undefined
  const steps: SyncStep[] = [
    {title: 'Read Mappings, Services and EndpointSlices', run: async () => void (snapshot = await inputs.loadSnapshot())},
    {title: 'Read external interfaces', run: async () => void (host = await inputs.readHost())},
    {
      title: 'Plan',
      run: async () => {
        options.beforePlan?.()
        planned = plan(snapshot!, host!, settings.plan, options.planMemo)
      },
    },
  ]
  return {steps, resolved: () => ({snapshot: snapshot!, host: host!, plan: planned!})}
}
