/** `smartnat flush` as one library call: everything either backend installed, or what the Go controller did, looked at first, removed under the lock. */
import type {LegacyOptions, LegacyReport} from '../backend/backend.js'
import {everyBackend, legacyLayout} from '../backend/registry.js'
import {flushOwned, type FlushOutcome, type FlushRequest} from '../sync/flush.js'
import {openRunner, type RunnerOptions} from './host.js'

export {flushedCount, type FlushOutcome, type FlushReport, type FlushRequest} from '../sync/flush.js'
export type {LegacyOptions, LegacyReport} from '../backend/backend.js'
export {DEFAULT_RT_TABLES} from '../host/rt-tables.js'

/** Removes what any backend owns on the host `runner` reaches; see flushOwned. */
export async function flushHost(runner: RunnerOptions, request: FlushRequest): Promise<FlushOutcome> {
  return flushOwned(everyBackend(openRunner(runner)), request)
}

/** Removes what the Go SmartNat controller installed on the host `runner` reaches, and nothing of smartnat's (flush --legacy). */
export async function flushLegacy(runner: RunnerOptions, legacy: LegacyOptions, request: FlushRequest<LegacyReport>): Promise<FlushOutcome<LegacyReport>> {
  const layout = legacyLayout(openRunner(runner))
  return flushOwned({flush: ({dryRun}) => layout.flush({...legacy, dryRun})}, request)
}
