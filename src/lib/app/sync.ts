/** `smartnat sync` as one library call: a dry run, or the whole pass under the lock with its statuses written back. */
import {hostname} from 'node:os'
import type {LegacyOptions} from '../backend/backend.js'
import {parseAssumedAddresses} from '../host/assumed.js'
import {withFloatingAddresses} from '../plan/floating.js'
import {withLock, type LockOptions} from '../host/lock.js'
import {toolVersionsFile} from '../host/tool-versions.js'
import {mayAskForAllocation} from '../mapping/dynamic.js'
import {silentLogger} from '../observe/log.js'
import {oneShotSource, type OneShotSource, type SourceOptions} from '../source/oneshot.js'
import {describePending} from '../sync/conntrack-cleanup.js'
import {dryRun} from '../sync/dry-run.js'
import type {RemovalGuard} from '../sync/guard.js'
import {syncSteps} from '../sync/once.js'
import type {Publisher, PublishResult} from '../sync/publish.js'
import {hostInterfaces} from '../sync/resolve.js'
import type {SyncSettings} from '../sync/settings.js'
import {runInOrder, type SyncStep} from '../sync/step.js'
import {collectGarbage, collectingAfter, limitHeapGrowth} from './heap.js'
import {openHost, type HostOptions} from './host.js'
import {appliedOutput, dryRunOutput, type SyncOutput} from './sync-output.js'

export type {SyncStep} from '../sync/step.js'
export type {MappingSummary, SyncOutput} from './sync-output.js'

/** Where a sync reads its objects, and where verdicts go back to when they come from the API. */
export type SyncSource = OneShotSource & {publisher?: Publisher}

export interface SyncRequest {
  host: HostOptions
  settings: SyncSettings
  /** Plan and render only; needs no root and touches nothing. */
  dryRun: boolean
  /** With `dryRun`: host addresses to plan for instead of this host's, `IP[/LEN][@IF],...`. */
  assumeAddresses?: string
  /** Rewrite everything smartnat owns, even where the kernel already matches. */
  full: boolean
  removalGuard: RemovalGuard
  lock: LockOptions
  /** Remove the Go controller's layout in the same transactions as this sync's (--migrate). */
  migrate?: LegacyOptions
  /** The file that keeps the tools' versions (toolVersionsPath); none: each tool is asked. */
  toolVersions?: string
}

/** A sync's outcome, and what to warn about first (status writes that failed, connections left to vanished targets). */
export interface SyncResult {
  output: SyncOutput
  warnings: string[]
}

/** Runs the steps of a pass, showing progress as the caller likes; by default one after the other, silently. */
export type StepRunner = (steps: SyncStep[]) => Promise<void>

/** Files or the API; with the API, verdicts go back as Mapping statuses and Events. Throws naming what is missing (a kubeconfig, a context). */
export async function openSyncSource(options: SourceOptions): Promise<SyncSource> {
  const source = await oneShotSource(options)
  if (!source.kubeConfig) return source
  const [{kubePublisher}, {openHostLease}, {openAllocatorLease}] = await Promise.all([import('../sync/publish.js'), import('../sync/lease.js'), import('../sync/allocator-lease.js')])
  const lease = openHostLease(source.kubeConfig, hostname(), options.lease, source.api ?? {}, silentLogger)
  const allocatorLease = openAllocatorLease(source.kubeConfig, lease.hostName, options.lease, source.api ?? {}, silentLogger)
  const allocator = {leadership: allocatorLease, durationSeconds: allocatorLease.durationSeconds}
  const publisher = kubePublisher(source.kubeConfig, lease.hostName, source.api, lease, {defaultLoadBalancer: options.defaultLoadBalancer ?? false, allocator, ...(options.dynamicPorts === undefined ? {} : {dynamicPorts: options.dynamicPorts})})
  return {
    ...source,
    // Renewed once per run, before the statuses are written: a host that syncs from cron is live for --lease-duration after each run.
    // The allocator Lease is tried once too (where there are pools): held, this run allocates and gives it up after; held by a watching instance, this run follows.
    publisher: {
      async publish(report, now, signal) {
        const renewed = await lease.renew()
        // Without pools, nor Mappings asking for an address or a port, nothing can be allocated or released: no Lease request then.
        if ((report.snapshot.addressPools ?? []).length > 0 || report.snapshot.mappings.some(mayAskForAllocation)) await allocatorLease.tryHold()
        const published = await publisher.publish(report, now, signal).finally(() => allocatorLease.stop())
        if (renewed) return published
        const error = new Error(`cannot renew this host's Lease (other hosts take its status keys for stale): ${lease.failure()}`)
        return {...published, errors: [error, ...published.errors]}
      },
    },
  }
}

/** Syncs this host with `source` once, or only shows what a sync would do. A refused mass removal is a MassRemovalError. */
export async function runSync(source: SyncSource, request: SyncRequest, runSteps: StepRunner = runInOrder): Promise<SyncResult> {
  limitHeapGrowth()
  const {runner, backend} = openHost(request.host)
  if (request.dryRun) {
    const {assumeAddresses} = request
    const floating = request.settings.floating ?? []
    const readHost = assumeAddresses ? async () => withFloatingAddresses(parseAssumedAddresses(assumeAddresses), floating) : hostInterfaces(runner, request.settings)
    const report = await dryRun({loadSnapshot: () => source.load(), readHost}, request.settings, backend)
    return {output: dryRunOutput(report), warnings: []}
  }
  return await withLock(request.lock, async () => {
    const toolVersions = request.toolVersions === undefined ? {} : {toolVersions: toolVersionsFile(request.toolVersions)}
    const {steps, report} = syncSteps({runner, backend, ...toolVersions}, collectingAfter(() => source.load()), request.settings, {
      full: request.full,
      removalGuard: request.removalGuard,
      ...(request.migrate ? {legacy: request.migrate} : {}),
    })
    let published: PublishResult | undefined
    if (source.publisher) {
      const {publisher} = source
      steps.push({
        title: 'Write Mapping statuses and Events',
        run: async () => {
          // What the pass read and rendered is garbage now; the statuses are compared and written on top.
          collectGarbage()
          published = await publisher.publish(report())
        },
      })
    }
    await runSteps(steps)
    const result = report()
    const warnings = (published?.errors ?? []).map((error) => error.message)
    if (result.conntrackError !== undefined) {
      // The rules are in place, so the sync succeeds; but the next sync no longer sees what changed.
      const left = result.pendingCleanup ? `\nleft in place: ${describePending(result.pendingCleanup)}; they last until their clients give up or conntrack times them out` : ''
      warnings.push(`rules applied, but connections to vanished targets were not dropped: ${result.conntrackError}${left}`)
    }
    return {output: appliedOutput(result, published), warnings}
  })
}
