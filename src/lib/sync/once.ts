/** One pass of the pipeline: resolve (snapshot + host -> plan) -> render -> removal guard -> apply -> forward check -> conntrack cleanup. */
import type {ApplyResult, Backend, ForwardReport, LegacyOptions} from '../backend/backend.js'
import {withForwardDrops} from '../backend/forward.js'
import type {Runner} from '../host/runner.js'
import type {RpFilterChange} from '../host/sysctl.js'
import type {ToolVersions} from '../host/tool-versions.js'
import type {Ipv4} from '../net/ipv4.js'
import type {HostInfo, Plan, Snapshot} from '../plan/model.js'
import type {PlanMemo} from '../plan/memo.js'
import {isMassRemoval, MassRemovalError, measureRemoval, type Removal, type RemovalGuard} from './guard.js'
import {dropVanishedFlows, type PendingCleanup} from './conntrack-cleanup.js'
import type {CleanupMemo} from './cleanup-memo.js'
import {checkPrerequisites, prepareHost} from './prepare.js'
import type {ReadClaim} from './read-claim.js'
import {resolveSteps} from './resolve.js'
import type {SyncSettings} from './settings.js'
import {runInOrder, type SyncStep} from './step.js'

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
  /** Why dropping connections to vanished targets failed; the rules were applied all the same. */
  conntrackError?: string
  /** What that failed cleanup left undone: a daemon passes it to its next pass (SyncOptions.retryCleanup). */
  pendingCleanup?: PendingCleanup
  /** The pods the Services of mode-direct Mappings list, for a daemon's next pass (SyncOptions.listedBefore); absent: that pass must look through the kernel's connections. */
  directListed?: Ipv4[]
  /** Rules in the state that was applied. */
  rulesProgrammed: number
  /** The backend state this pass applied: what the kernel holds now unless someone else changed it. */
  kernelState?: unknown
  /** Set when this pass applied a mass removal that its guard allowed. */
  massRemoval?: Removal
}

export interface SyncDeps {
  runner: Runner
  backend: Backend
  /** The tools' versions known from earlier runs (tool-versions.ts); none: each tool is asked. */
  toolVersions?: ToolVersions
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
  /** Holds a pass that would remove many of the Mappings the kernel programs (see guard.ts); none: no guard. */
  removalGuard?: RemovalGuard
  /** Conntrack cleanup an earlier pass could not do (its SyncReport.pendingCleanup), tried again. */
  retryCleanup?: PendingCleanup
  /** The previous pass's SyncReport.directListed: pods no longer listed since then are gone. */
  listedBefore?: readonly Ipv4[]
  /** What conntrack cleanup kept from earlier passes (a daemon keeps one for its lifetime). */
  cleanupMemo?: CleanupMemo
  /** The host as the last pass read it, known unchanged since (HostChanges): not read again, its reverse-path filter not checked again. */
  assumeHost?: HostInfo
  /** Remove the Go controller's layout with this pass's apply (sync --migrate). */
  legacy?: LegacyOptions
  /** A daemon's reading pass that may give way to a change (read-claim.ts): it stops, writing nothing, once it has. */
  claim?: ReadClaim
  /** Called in a pass that reads the kernel once its state is read and parsed, before it is compared with the desired one (a daemon collects garbage there); not when the read failed or gave way. */
  afterRead?: () => void
  /**
   * Read the kernel once the desired state is rendered, not while planning: a backend that keeps its
   * last render reads the kernel's sets against it (nftables: those found unchanged are not copied).
   */
  readAfterRender?: boolean
}

/** The stages of one sync pass, in order; run them all, then call `report()`. */
export function syncSteps(
  deps: SyncDeps,
  loadSnapshot: () => Promise<Snapshot>,
  settings: SyncSettings,
  options: SyncOptions = {},
): {steps: SyncStep[]; report(): SyncReport} {
  let rpFilter: RpFilterChange[] = []
  let planned: Plan | undefined
  let kernelRead: Promise<unknown> | undefined
  let applied: ApplyResult | undefined
  let forward: ForwardReport | undefined
  let kernelState: unknown
  let conntrackDeleted = 0
  let conntrackFailure: {conntrackError: string; pendingCleanup: PendingCleanup} | undefined
  let directListed: Ipv4[] | undefined
  let rulesProgrammed = 0
  let massRemoval: Removal | undefined
  const startRead = () => {
    if (options.assumeActual === undefined || options.full) kernelRead = claimed(readAhead(deps.backend), options.claim)
  }
  const readHost = async () => {
    if (options.assumeHost) return options.assumeHost
    const prepared = await prepareHost(deps.runner, settings)
    rpFilter = prepared.rpFilter
    return prepared.host
  }
  const resolving = resolveSteps({loadSnapshot, readHost}, settings, {
    ...(options.planMemo ? {planMemo: options.planMemo} : {}),
    // The kernel's state comes from processes: read it while this process plans.
    beforePlan: () => {
      options.claim?.check()
      if (!options.readAfterRender) startRead()
    },
  })
  const steps: SyncStep[] = [
    ...(options.checkPrerequisites === false ? [] : [{title: 'Check host prerequisites', run: () => checkPrerequisites(deps.runner, deps.backend, deps.toolVersions)}]),
    ...resolving.steps,
    {
      title: `Apply (${deps.backend.name})`,
      run: async () => {
        options.claim?.check()
        planned = resolving.resolved().plan
        const desired = deps.backend.render(planned.model)
        rulesProgrammed = deps.backend.ruleCount(desired)
        if (options.readAfterRender) startRead()
        // The read's text and what parsing it left behind are garbage from here on; a failed read is the apply's to report.
        if (kernelRead !== undefined && options.afterRead) await kernelRead.then(options.afterRead, () => undefined)
        if (options.removalGuard) {
          const trusted = options.assumeActual !== undefined && !options.full
          massRemoval = await guardRemoval(deps.backend, desired, trusted ? options.assumeActual : kernelRead, options.removalGuard)
        }
        applied = await deps.backend.apply(desired, {
          full: options.full ?? false,
          ...(options.assumeActual === undefined ? {} : {assumeActual: options.assumeActual}),
          ...(kernelRead === undefined ? {} : {kernelRead}),
          ...(options.legacy ? {legacy: options.legacy} : {}),
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
        planned = withForwardDrops(planned!, forward.drops)
      },
    },
    {
      title: 'Drop connections to vanished targets',
      // Never throws: the rules are applied, and the report says what failed.
      run: async () => {
        const {snapshot, host} = resolving.resolved()
        const outcome = await dropVanishedFlows(deps.runner, applied!, snapshot, planned!, host, options.retryCleanup, options.listedBefore, options.cleanupMemo)
        conntrackDeleted = outcome.deleted
        directListed = outcome.listed
        conntrackFailure = outcome.error === undefined ? undefined : {conntrackError: outcome.error, pendingCleanup: outcome.pending!}
      },
    },
  ]
  return {
    steps,
    report: () => ({
      snapshot: resolving.resolved().snapshot,
      plan: planned!,
      host: resolving.resolved().host,
      applied: applied!,
      forward: forward!,
      rpFilter,
      conntrackDeleted,
      ...conntrackFailure,
      ...(directListed ? {directListed} : {}),
      rulesProgrammed,
      kernelState,
      ...(massRemoval ? {massRemoval} : {}),
    }),
  }
}

const programmedCache = new WeakMap<object, ReadonlySet<string>>()

/**
 * The Mappings `state` programs. A watch pass trusts the state the pass before applied, whose
 * Mappings that pass already counted (20,000 DNAT rules at 10,000 Mappings take 8-15 ms to scan).
 */
function programmedIn(backend: Pick<Backend, 'programmedMappings'>, state: unknown): ReadonlySet<string> {
  if (typeof state !== 'object' || state === null) return backend.programmedMappings(state)
  let mappings = programmedCache.get(state)
  if (mappings === undefined) programmedCache.set(state, (mappings = backend.programmedMappings(state)))
  return mappings
}

/**
 * Throws MassRemovalError when going from the `actual` state to `desired` removes more programmed
 * Mappings than the guard lets through; returns the removal when it was a mass removal allowed.
 */
async function guardRemoval(backend: Pick<Backend, 'programmedMappings'>, desired: unknown, actual: unknown, guard: RemovalGuard): Promise<Removal | undefined> {
  let current: unknown
  try {
    current = await actual
  } catch {
    // The apply awaits the same read and reports its failure.
    return undefined
  }
  const removal = measureRemoval(programmedIn(backend, current), programmedIn(backend, desired))
  if (!isMassRemoval(removal, guard.policy)) return undefined
  if (!guard.allows(removal)) throw new MassRemovalError(removal, guard.policy)
  return removal
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

/** `read`, failing with ReadGaveWayError once it settles if the pass gave way meanwhile; else the pass may no longer give way, as it writes (or fails) next. */
function claimed<State>(read: Promise<State>, claim: ReadClaim | undefined): Promise<State> {
  if (claim === undefined) return read
  // A throw from write() (the pass gave way) takes the place of what the read settled with.
  const checked = read.finally(() => claim.write())
  checked.catch(() => undefined)
  return checked
}

/** Applies one snapshot to the kernel: the whole desired state, writing only what differs. */
export async function syncOnce(deps: SyncDeps, loadSnapshot: () => Promise<Snapshot>, settings: SyncSettings, options: SyncOptions = {}): Promise<SyncReport> {
  const {steps, report} = syncSteps(deps, loadSnapshot, settings, options)
  await runInOrder(steps)
  return report()
}
