/** Removing everything smartnat installed: look first, ask if asked to, then flush under the lock. */
import type {Backend, FlushReport} from '../backend/backend.js'
import {withLock, type LockOptions} from '../host/lock.js'

export type {FlushReport} from '../backend/backend.js'

export interface FlushRequest {
  /** List what would be removed and write nothing. */
  dryRun: boolean
  /** Asked with the preview before anything is removed; absent means go ahead. */
  confirm?: (preview: FlushReport) => Promise<boolean>
  lock: LockOptions
}

/** A flush's report, plus whether the operator said no. */
export type FlushOutcome = FlushReport & {declined: boolean}

/** Removes what the backend owns; a dry run or a decline writes nothing, and nothing owned means nothing asked. */
export async function flushOwned(backend: Pick<Backend, 'flush'>, request: FlushRequest): Promise<FlushOutcome> {
  if (request.dryRun) return {...(await backend.flush({dryRun: true})), declined: false}
  if (request.confirm) {
    const preview = await backend.flush({dryRun: true})
    if (!preview.changed) return {...preview, dryRun: false, declined: false}
    if (!(await request.confirm(preview))) return {dryRun: false, changed: false, removed: nothingRemoved(), declined: true}
  }
  // The kernel is read again under the lock: a sync may have changed it while the operator was deciding.
  const report = await withLock({purpose: 'flush', ...request.lock}, () => backend.flush({dryRun: false}))
  return {...report, declined: false}
}

/** How many objects a report names, all kinds together. */
export function flushedCount(report: FlushReport): number {
  return Object.values(report.removed).reduce((n, items) => n + items.length, 0)
}

function nothingRemoved(): FlushReport['removed'] {
  return {jumps: [], chains: [], sets: [], ipRules: [], routes: []}
}
