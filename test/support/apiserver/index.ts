/**
 * A Kubernetes API server for tests and local development, speaking the real wire protocol on loopback:
 * discovery, OpenAPI v3, CRUD with resourceVersion conflicts, patches, the status subresource, list paging,
 * watches with bookmarks and 410 Gone, and CRD schema validation. `kubectl` and `@kubernetes/client-node` work against it.
 */
import {readFile, writeFile} from 'node:fs/promises'
import type {AddressInfo} from 'node:net'
import {parseAllDocuments, stringify} from 'yaml'
import {ObjectApi} from './objects.js'
import {Registry} from './registry.js'
import {createApiHttpServer} from './server.js'
import {Store, type KubeObject} from './store.js'
import {ServedTypes} from './types.js'
import {WatchHub} from './watch.js'

export {ApiError} from './errors.js'
export {ObjectApi, PatchType} from './objects.js'
export type {ServedTypes} from './types.js'
export type {Store, KubeObject, StoredEvent} from './store.js'

export interface ApiServerOptions {
  /** TCP port on 127.0.0.1; 0 or absent picks a free one. */
  port?: number
  /** YAML files whose CustomResourceDefinitions are created at startup. */
  crds?: string[]
  /** How many events (across all resources) are kept for watches and paged lists; older resourceVersions get 410. */
  historySize?: number
  /** How often watches that allow bookmarks get a BOOKMARK event. */
  bookmarkIntervalMs?: number
  /** Answer aggregated discovery (apidiscovery.k8s.io/v2) when the client asks for it; otherwise only legacy discovery. */
  aggregatedDiscovery?: boolean
  /** Receives one line per request. */
  log?: (line: string) => void
  /** Time added to every write request before it is handled (0 when absent). */
  writeLatencyMs?: number
}

export interface ApiServer {
  url: string
  port: number
  /** Object operations with the same semantics as the HTTP API, for setting up and inspecting state in tests. */
  api: ObjectApi
  store: Store
  registry: Registry
  /** The types tests name most (`server.types.mappings`), looked up when read. */
  types: ServedTypes
  /** Number of watches currently streaming. */
  openWatches(): number
  /** Ends every open watch, as an API server restart or a watch timeout does; clients must re-watch. */
  closeWatches(): void
  /** Creates each manifest as the resource its apiVersion and kind name, in `namespace` when it is namespaced (default: default). */
  createAll(manifests: readonly Record<string, unknown>[], namespace?: string): void
  /** A kubeconfig (YAML) whose current context points at this server. */
  kubeconfig(options?: KubeconfigOptions): string
  writeKubeconfig(path: string, options?: KubeconfigOptions): Promise<void>
  /** Ends every watch and stops listening. */
  stop(): Promise<void>
  /**
   * After stop(): listens on the same port again over the same objects, as kube-apiserver after a
   * restart; with `newHistory` it comes back onto a new resourceVersion history (Store.newHistory).
   */
  listenAgain(options?: {newHistory?: boolean}): Promise<void>
}

export interface KubeconfigOptions {
  namespace?: string
  /**
   * Whether the cluster says insecure-skip-tls-verify (true when absent): client-node on its own refuses
   * plain http without it, smartnat's loader and kubectl accept http either way.
   */
  insecureSkipTlsVerify?: boolean
}

const SEED_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease']

/** Starts a server on loopback with the built-in types, the seed namespaces and the `kubernetes` Service. */
export async function startApiServer(options: ApiServerOptions = {}): Promise<ApiServer> {
  const store = new Store(options.historySize ?? 1000)
  const registry = new Registry()
  const api = new ObjectApi(store, registry)
  const hub = new WatchHub(options.bookmarkIntervalMs ?? 5000)
  const types = new ServedTypes(registry)
  for (const name of SEED_NAMESPACES) api.create(types.namespaces, undefined, {metadata: {name}})
  api.create(types.services, 'default', {
    metadata: {name: 'kubernetes', labels: {component: 'apiserver', provider: 'kubernetes'}},
    spec: {clusterIP: '10.96.0.1', ports: [{name: 'https', port: 443, protocol: 'TCP', targetPort: 6443}]},
  })
  for (const file of options.crds ?? []) {
    for (const doc of parseAllDocuments(await readFile(file, 'utf8'))) {
      const obj = doc.toJS() as KubeObject | null
      if (obj?.kind === 'CustomResourceDefinition') api.create(types.crds, undefined, obj, {fieldValidation: 'Strict'})
    }
  }

  const server = createApiHttpServer({api, registry, hub, aggregatedDiscovery: options.aggregatedDiscovery ?? true, log: options.log, writeLatencyMs: options.writeLatencyMs})
  const listen = (on: number) => new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(on, '127.0.0.1', () => {
      server.off('error', reject)
      resolve()
    })
  })
  await listen(options.port ?? 0)
  const port = (server.address() as AddressInfo).port
  const url = `http://127.0.0.1:${port}`

  const kubeconfig = (opts: KubeconfigOptions = {}) => stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{name: 'smartnat-test', cluster: {server: url, ...(opts.insecureSkipTlsVerify === false ? {} : {'insecure-skip-tls-verify': true})}}],
    users: [{name: 'smartnat-test', user: {}}],
    contexts: [{name: 'smartnat-test', context: {cluster: 'smartnat-test', user: 'smartnat-test', namespace: opts.namespace ?? 'default'}}],
    'current-context': 'smartnat-test',
    preferences: {},
  })

  return {
    url,
    port,
    api,
    store,
    registry,
    types,
    openWatches: () => hub.size,
    closeWatches: () => hub.closeAll(),
    createAll: (manifests, namespace = 'default') => {
      for (const manifest of manifests) {
        const type = registry.findKind(String(manifest.apiVersion), String(manifest.kind))
        if (type === undefined) throw new Error(`the test API server serves no ${String(manifest.kind)} of ${String(manifest.apiVersion)}`)
        api.create(type, type.namespaced ? namespace : undefined, manifest as KubeObject)
      }
    },
    kubeconfig,
    writeKubeconfig: (path, opts) => writeFile(path, kubeconfig(opts), {mode: 0o600}),
    stop: () => new Promise<void>((resolve) => {
      hub.closeAll()
      server.close(() => resolve())
      server.closeAllConnections()
    }),
    listenAgain: async (opts = {}) => {
      if (server.listening) throw new Error(`the test API server on port ${port} is still listening; stop() it first`)
      if (opts.newHistory) store.newHistory()
      await listen(port)
    },
  }
}
