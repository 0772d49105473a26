/** Removing everything smartnat installed: look first, ask if asked to, then flush under the lock. */
import type {FlushReport} from '../backend/backend.js'
import {withLock, type LockOptions} from '../host/lock.js'

export type {FlushReport} from '../backend/backend.js'

export interface FlushRequest<Report extends FlushReport = FlushReport> {
  /** List what would be removed and write nothing. */
  dryRun: boolean
  /** Asked with the preview before anything is removed; absent means go ahead. */
  confirm?: (preview: Report) => Promise<boolean>
  lock: LockOptions
}

/** A flush's report, plus whether the operator said no. */
export type FlushOutcome<Report extends FlushReport = FlushReport> = Report & {declined: boolean}

/** Removes what the backend owns; a dry run or a decline writes nothing, and nothing owned means nothing asked. */
export async function flushOwned<Report extends FlushReport>(
  backend: {flush(options: {dryRun: boolean}): Promise<Report>},
  request: FlushRequest<Report>,
): Promise<FlushOutcome<Report>> {
  if (request.dryRun) return {...(await backend.flush({dryRun: true})), declined: false}
  if (request.confirm) {
    const preview = await backend.flush({dryRun: true})
    if (!preview.changed) return {...preview, dryRun: false, declined: false}
    if (!(await request.confirm(preview))) return {...preview, dryRun: false, changed: false, removed: nothingRemoved(preview.removed), declined: true}
  }
  // The kernel is read again under the lock: a sync may have changed it while the operator was deciding.
  const report = await withLock({purpose: 'flush', ...request.lock}, () => backend.flush({dryRun: false}))
  return {...report, declined: false}
}

/** How many objects a report names, all kinds together. */
export function flushedCount(report: FlushReport): number {
  return Object.values(report.removed).reduce((n, items) => n + items.length, 0)
}

/** The same kinds as `removed`, each with nothing in it. */
function nothingRemoved<Removed extends FlushReport['removed']>(removed: Removed): Removed {
  return Object.fromEntries(Object.keys(removed).map((kind) => [kind, []])) as unknown as Removed
}
