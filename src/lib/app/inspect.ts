/** What `status` and `explain` both ask of a host: its inspection, read with nothing written. */
import type {Backend} from '../backend/backend.js'
import type {Runner} from '../host/runner.js'
import {inspectHost, type Inspection} from '../inspect/inspection.js'
import {snapshotLoader, type SourceOptions} from '../source/oneshot.js'
import type {SyncSettings} from '../sync/settings.js'
import {openHost, type HostOptions} from './host.js'

/** Which objects to read, how to plan them, and which backend's rules to read back. */
export interface InspectRequest {
  source: SourceOptions
  host: HostOptions
  settings: SyncSettings
}

/** An inspection, and the runner and backend that made it, for whatever else the command reads. */
export interface OpenInspection {
  runner: Runner
  backend: Backend
  inspection: Inspection<unknown>
}

/** Plans like a sync and reads the kernel back, changing nothing. */
export async function openInspection(request: InspectRequest): Promise<OpenInspection> {
  const {runner, backend} = openHost(request.host)
  const inspection = await inspectHost({runner, backend, loadSnapshot: snapshotLoader(request.source)}, request.settings)
  return {runner, backend, inspection}
}
