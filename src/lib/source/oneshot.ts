/** Where a one-shot command reads its objects: files with --from-file, otherwise the Kubernetes API. */
import type {KubeConfig} from '@kubernetes/client-node'

import type {Snapshot} from '../plan/model.js'
import {readManifests} from './file.js'
import type {ApiOptions} from './kube/request.js'

export interface SourceOptions {
  fromFile?: string
  kubeconfig?: string
  context?: string
  /** Longest wait for one API request (--api-timeout); the default of the kube source when absent. */
  apiTimeoutMs?: number
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
  if (path !== undefined) return {load: () => readManifests(path), warnings: []}
  // The API client is loaded for the API only: it adds 70 MB and 0.4 s to a start.
  const [{loadKubeConfig, plainHttpWarning}, {listSnapshot}] = await Promise.all([import('./kube/config.js'), import('./kube/source.js')])
  const kubeConfig = loadKubeConfig({
    ...(options.kubeconfig ? {kubeconfig: options.kubeconfig} : {}),
    ...(options.context ? {context: options.context} : {}),
  })
  const api: ApiOptions = options.apiTimeoutMs !== undefined ? {timeoutMs: options.apiTimeoutMs} : {}
  const warning = plainHttpWarning(kubeConfig)
  return {load: () => listSnapshot(kubeConfig, undefined, api), kubeConfig, api, warnings: warning ? [warning] : []}
}
