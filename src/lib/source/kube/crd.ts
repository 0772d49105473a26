/**
 * Whether the Mapping CRD in the cluster is smartnat's. smartnat writes status only through the status
 * subresource; the Go controller's CRD has none, so every such write gets 404. API discovery
 * (GET /apis/GROUP/VERSION) lists `mappings/status` exactly when the subresource is served.
 */
import {CustomObjectsApi, type KubeConfig} from '@kubernetes/client-node'

import {MAPPING_GROUP, MAPPING_VERSION} from '../../mapping/types.js'
import {crdInstallCommand} from './crd-install.js'
import {Backoff, sleep, type BackoffOptions, type Delay} from './backoff.js'
import {describeApiError, httpStatusOf} from './errors.js'
import {MAPPING_PLURAL} from './kinds.js'
import {abortOn, timedRequest, type ApiOptions} from './request.js'

/** The installed Mapping CRD serves no status subresource: no retry can fix that, only installing smartnat's CRD. */
export class LegacyCrdError extends Error {
  override readonly name = 'LegacyCrdError'

  constructor() {
    super(
      `the Mapping CRD installed in the cluster has no status subresource (${MAPPING_PLURAL}/status), as the Go controller's had; ` +
        `smartnat writes Mapping status only there. Install smartnat's CRD: ${crdInstallCommand()}`,
    )
  }
}

/**
 * What discovery says of the Mapping resource: `status` when it serves the status subresource,
 * `no-status` when it serves Mappings without it, `absent` when it serves no Mappings (no CRD yet).
 */
export type MappingDiscovery = 'status' | 'no-status' | 'absent'

/** Asks discovery once, within the deadline of `api`. */
export async function discoverMappings(kc: KubeConfig, api: ApiOptions = {}): Promise<MappingDiscovery> {
  const custom = kc.makeApiClient(CustomObjectsApi)
  let names: string[]
  try {
    const list = await timedRequest({kind: 'APIResourceList', verb: 'get'}, api, (signal) =>
      custom.getAPIResources({group: MAPPING_GROUP, version: MAPPING_VERSION}, abortOn(signal)))
    names = list.resources.map((r) => r.name)
  } catch (error) {
    if (httpStatusOf(error) === 404) return 'absent'
    throw error
  }
  if (names.includes(`${MAPPING_PLURAL}/status`)) return 'status'
  return names.includes(MAPPING_PLURAL) ? 'no-status' : 'absent'
}

export interface StatusCheckOptions {
  /** Stops asking; the check then resolves without an answer. */
  signal: AbortSignal
  /** Told of each answer that decides nothing yet (an error, or no Mapping CRD), with the wait before the next. */
  onRetry?: (reason: string, retryInMs: number) => void
  backoff?: BackoffOptions
  delay?: Delay
}

/**
 * Asks discovery until it answers: resolves once the status subresource is served (or when stopped),
 * throws LegacyCrdError when Mappings are served without it. No CRD, or an API that cannot be reached,
 * decides nothing, so it asks again with backoff: the daemon must start while the API is down.
 */
export async function requireStatusSubresource(kc: KubeConfig, api: ApiOptions, options: StatusCheckOptions): Promise<void> {
  const backoff = new Backoff(options.backoff)
  const delay = options.delay ?? sleep
  while (!options.signal.aborted) {
    let reason: string
    try {
      const found = await discoverMappings(kc, api)
      if (found === 'status') return
      if (found === 'no-status') throw new LegacyCrdError()
      reason = `the API serves no ${MAPPING_PLURAL}.${MAPPING_GROUP}/${MAPPING_VERSION} (is the CRD installed?)`
    } catch (error) {
      if (error instanceof LegacyCrdError) throw error
      reason = describeApiError(error)
    }
    const waitMs = backoff.next()
    options.onRetry?.(reason, waitMs)
    await delay(waitMs, options.signal)
  }
}

export {crdInstallCommand}
