/** Everything `status` and `explain` look at, gathered once: objects, host, desired state, and the kernel's. */
import type {Backend} from '../backend/backend.js'
import type {Counter, StatePart} from '../backend/parts.js'
import type {Runner} from '../host/runner.js'
import {errorChain} from '../observe/log.js'
import type {HostInfo, Plan, Snapshot} from '../plan/model.js'
import {hostInterfaces, resolve} from '../sync/resolve.js'
import type {SyncSettings} from '../sync/settings.js'
import {diffParts, type Drift} from './drift.js'

export interface InspectDeps<State> {
  runner: Runner
  backend: Backend<State>
  loadSnapshot: () => Promise<Snapshot>
}

/** The kernel's state, or why it could not be read (most often: not root). */
export type KernelView<State> =
  | {
      readable: true
      state: State
      counters: Map<string, Counter>
      /** Whether the kernel holds anything of smartnat's. */
      installed: boolean
    }
  | {readable: false; reason: string}

/** The kernel as status and explain tell it; `installed`: it holds anything of smartnat's; null when it could not be read. */
export interface KernelSummary {
  readable: boolean
  reason: string | null
  installed: boolean | null
}

/** What status and explain say of the kernel they read. */
export function kernelSummary(kernel: KernelView<unknown>): KernelSummary {
  return kernel.readable ? {readable: true, reason: null, installed: kernel.installed} : {readable: false, reason: kernel.reason, installed: null}
}

export interface Inspection<State> {
  settings: SyncSettings
  backend: string
  /** Whether the backend's rules keep packet counters (the nftables backend's do not). */
  countsPackets: boolean
  snapshot: Snapshot
  host: HostInfo
  plan: Plan
  desired: State
  desiredParts: StatePart[]
  kernel: KernelView<State>
  /** Undefined when the kernel could not be read. */
  drift?: Drift
}

/** Plans and renders like a sync while it reads the kernel; a kernel that cannot be read is reported, not thrown. */
export async function inspectHost<State>(deps: InspectDeps<State>, settings: SyncSettings): Promise<Inspection<State>> {
  // The kernel is read while the objects and the host's addresses are: neither waits on the other.
  const actual = readActual(deps.backend)
  const {snapshot, host, plan: planned} = await resolve({loadSnapshot: deps.loadSnapshot, readHost: hostInterfaces(deps.runner, settings)}, settings)
  const desired = deps.backend.render(planned.model)
  const desiredParts = deps.backend.inspect.parts(desired, planned.model)
  const {kernel, drift} = compareKernel(deps.backend, await actual, planned, desired, desiredParts)
  return {
    settings,
    backend: deps.backend.name,
    countsPackets: deps.backend.inspect.readCounted !== undefined,
    snapshot,
    host,
    plan: planned,
    desired,
    desiredParts,
    kernel,
    ...(drift ? {drift} : {}),
  }
}

type Actual<State> = {state: State; counters: Map<string, Counter>} | {error: unknown}

/** The kernel's state and counters, or why they could not be read; never rejects. */
async function readActual<State>(backend: Backend<State>): Promise<Actual<State>> {
  try {
    return (await backend.inspect.readCounted?.()) ?? {state: await backend.read(), counters: new Map<string, Counter>()}
  } catch (error) {
    return {error}
  }
}

/**
 * The kernel's state and its drift from `desired`. When a sync would write nothing, there is none,
 * and the kernel's state is not cut into parts: at 10,000 Mappings cutting and comparing them
 * took 1.6 s and 80 MB.
 */
function compareKernel<State>(
  backend: Backend<State>,
  actual: Actual<State>,
  planned: Plan,
  desired: State,
  desiredParts: StatePart[],
): {kernel: KernelView<State>; drift?: Drift} {
  if ('error' in actual) return {kernel: {readable: false, reason: errorChain(actual.error)}}
  const {state, counters} = actual
  try {
    if (backend.inspect.inSync(desired, state)) {
      return {kernel: {readable: true, state, counters, installed: desiredParts.length > 0}, drift: {missing: [], unexpected: []}}
    }
    const parts = backend.inspect.parts(state, planned.model)
    return {kernel: {readable: true, state, counters, installed: parts.length > 0}, drift: diffParts(desiredParts, parts)}
  } catch (error) {
    return {kernel: {readable: false, reason: errorChain(error)}}
  }
}
