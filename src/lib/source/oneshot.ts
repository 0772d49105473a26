/** Where a one-shot command reads its objects: files with --from-file, otherwise the Kubernetes API. */
import type {KubeConfig} from '@kubernetes/client-node'

import {withPendingAllocations} from '../allocate/pending.js'
import {DEFAULT_DYNAMIC_PORTS, type PortRange} from '../mapping/dynamic.js'
import {withServiceExposures} from '../plan/exposures.js'
import type {Snapshot} from '../plan/model.js'
import {readManifests} from './file.js'
import type {LeaseSettings} from './kube/lease-settings.js'
import type {ApiOptions} from './kube/request.js'

export interface SourceOptions {
  fromFile?: string
  kubeconfig?: string
  context?: string
  /** Longest wait for one API request (--api-timeout); the default of the kube source when absent. */
  apiTimeoutMs?: number
  /** Serve LoadBalancer Services without a loadBalancerClass too (--default-load-balancer). */
  defaultLoadBalancer?: boolean
  /** Where ports left empty in Mappings are allocated (--dynamic-ports). */
  dynamicPorts?: PortRange
  /** This host's Lease, for the commands that write statuses back (sync, watch). */
  lease?: LeaseSettings
}

export interface OneShotSource {
  load(): Promise<Snapshot>
  /** Set when the objects come from the API, which is also where statuses go back to. */
  kubeConfig?: KubeConfig
  /** The deadline of each API request, for whatever else the command asks the API. */
  api?: ApiOptions
  /** To tell the user once, before the first request (e.g. that the API is reached unencrypted). */
  warnings: string[]
}

/** Manifests from disk with `fromFile`, otherwise the API as kubectl would reach it (errors name what is missing). */
export async function oneShotSource(options: SourceOptions): Promise<OneShotSource> {
  const path = options.fromFile
  const defaultLoadBalancer = options.defaultLoadBalancer ?? false
  const dynamicPorts = options.dynamicPorts ?? DEFAULT_DYNAMIC_PORTS
  const exposing = (snapshot: Snapshot, allocates: boolean) =>
    withServiceExposures(withPendingAllocations(snapshot, {defaultLoadBalancer, dynamicPorts, allocates}), defaultLoadBalancer)
  if (path !== undefined) return {load: async () => exposing(await readManifests(path), false), warnings: []}
  const [{kubeConfig, warning}, {listSnapshot}] = await Promise.all([openKubeConfig(options), import('./kube/source.js')])
  const api: ApiOptions = options.apiTimeoutMs !== undefined ? {timeoutMs: options.apiTimeoutMs} : {}
  return {load: async () => exposing(await listSnapshot(kubeConfig, undefined, api), true), kubeConfig, api, warnings: warning ? [warning] : []}
}

/** The kubeconfig of --kubeconfig and --context as kubectl would load it, and the warning to give once about it, if any; throws naming what is wrong. */
export async function openKubeConfig(options: SourceOptions): Promise<{kubeConfig: KubeConfig; warning: string | undefined}> {
  // The API client is loaded for the API only: it adds 70 MB and 0.4 s to a start.
  const {loadKubeConfig, plainHttpWarning} = await import('./kube/config.js')
  const kubeConfig = loadKubeConfig({
    ...(options.kubeconfig ? {kubeconfig: options.kubeconfig} : {}),
    ...(options.context ? {context: options.context} : {}),
  })
  return {kubeConfig, warning: plainHttpWarning(kubeConfig)}
}

/** The one-shot source's loader: files with `fromFile`, otherwise the Kubernetes API. */
export function snapshotLoader(source: SourceOptions): () => Promise<Snapshot> {
  // Resolved on first use, so a missing kubeconfig is reported like any other failure to read the source.
  return async () => (await oneShotSource(source)).load()
}
