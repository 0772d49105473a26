/** `smartnat flush` as one library call: everything either backend installed, looked at first, removed under the lock. */
import {everyBackend} from '../backend/registry.js'
import {flushOwned, type FlushOutcome, type FlushRequest} from '../sync/flush.js'
import {openRunner, type RunnerOptions} from './host.js'

export {flushedCount, type FlushOutcome, type FlushReport, type FlushRequest} from '../sync/flush.js'

/** Removes what any backend owns on the host `runner` reaches; see flushOwned. */
export async function flushHost(runner: RunnerOptions, request: FlushRequest): Promise<FlushOutcome> {
  return flushOwned(everyBackend(openRunner(runner)), request)
}
