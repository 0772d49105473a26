/** Finds and loads cluster credentials the way kubectl does: --kubeconfig, KUBECONFIG, ~/.kube/config, then in-cluster. */
import {existsSync} from 'node:fs'
import {delimiter, join} from 'node:path'
import {KubeConfig, type Cluster, type Context, type User} from '@kubernetes/client-node'
import {asKubectlReaches, isPlainHttp} from './server.js'
import {confirmUsable} from './usable.js'

/** Where the service account of a pod is mounted. */
export const SERVICE_ACCOUNT_DIR = '/var/run/secrets/kubernetes.io/serviceaccount'

export interface KubeConfigOptions {
  /** Path of a kubeconfig file (--kubeconfig); it must exist. */
  kubeconfig?: string
  /** Context to use instead of the file's current-context (--context). */
  context?: string
  /** Environment to read KUBECONFIG, HOME and KUBERNETES_SERVICE_HOST/PORT from; process.env when absent. */
  env?: NodeJS.ProcessEnv
  /** Directory holding the service account token and CA; SERVICE_ACCOUNT_DIR when absent. */
  serviceAccountDir?: string
}

/**
 * Loads the kubeconfig kubectl would use and selects the context, with the server reached as kubectl
 * reaches it (see asKubectlReaches); throws, naming what is wrong, on anything no retry can fix: an
 * unknown context, cluster or user, a server that is not an http(s) URL, credential files that cannot be read.
 */
export function loadKubeConfig(options: KubeConfigOptions = {}): KubeConfig {
  const env = options.env ?? process.env
  const kc = options.kubeconfig !== undefined
    ? fromFiles([requireFile(options.kubeconfig)])
    : fromEnvironment(env, options.serviceAccountDir ?? SERVICE_ACCOUNT_DIR)
  if (options.context !== undefined) {
    if (!kc.getContextObject(options.context)) {
      const known = kc.getContexts().map((c) => c.name)
      throw new Error(`kubeconfig: context "${options.context}" not found (known contexts: ${known.length > 0 ? known.join(', ') : 'none'})`)
    }
    kc.setCurrentContext(options.context)
  }
  const current = kc.getCurrentContext()
  if (!current) throw new Error('kubeconfig: no current context; give --context or set current-context')
  const context = kc.getContextObject(current)
  if (!context) throw new Error(`kubeconfig: current context "${current}" not found`)
  const cluster = kc.getCluster(context.cluster)
  if (!cluster) throw new Error(`kubeconfig: context "${current}" refers to unknown cluster "${context.cluster}"`)
  const user = context.user === undefined ? undefined : kc.getUser(context.user)
  if (context.user !== undefined && !user) throw new Error(`kubeconfig: context "${current}" refers to unknown user "${context.user}"`)
  const reached = asKubectlReaches(cluster, user ?? undefined)
  confirmUsable(reached, user ?? undefined)
  return reached === cluster ? kc : withCluster(kc, cluster, reached)
}

/** The warning to give once when the current cluster is reached over plain http, where nothing is encrypted. */
export function plainHttpWarning(kc: KubeConfig): string | undefined {
  const server = kc.getCurrentCluster()?.server
  if (server === undefined || !isPlainHttp(server)) return undefined
  return `the Kubernetes API server ${server} is reached over plain http: requests, answers and credentials travel unencrypted`
}

/** A copy of `kc` in which `replaced` is `cluster`. */
function withCluster(kc: KubeConfig, replaced: Cluster, cluster: Cluster): KubeConfig {
  const copy = new KubeConfig()
  copy.loadFromOptions({
    clusters: kc.getClusters().map((c) => (c === replaced ? cluster : c)),
    users: kc.getUsers(),
    contexts: kc.getContexts(),
    currentContext: kc.getCurrentContext(),
  })
  return copy
}

function requireFile(path: string): string {
  if (!existsSync(path)) throw new Error(`kubeconfig ${path}: no such file`)
  return path
}

function fromEnvironment(env: NodeJS.ProcessEnv, serviceAccountDir: string): KubeConfig {
  if (env.KUBECONFIG) {
    // kubectl skips listed files that do not exist, and fails only when none does.
    const listed = env.KUBECONFIG.split(delimiter).filter((f) => f !== '')
    const present = listed.filter((f) => existsSync(f))
    if (present.length === 0) throw new Error(`KUBECONFIG: none of the listed files exists (${listed.join(', ')})`)
    return fromFiles(present)
  }
  const home = env.HOME ? join(env.HOME, '.kube', 'config') : undefined
  if (home !== undefined && existsSync(home)) return fromFiles([home])
  if (env.KUBERNETES_SERVICE_HOST && env.KUBERNETES_SERVICE_PORT && existsSync(join(serviceAccountDir, 'token'))) {
    return inCluster(env.KUBERNETES_SERVICE_HOST, env.KUBERNETES_SERVICE_PORT, serviceAccountDir)
  }
  throw new Error('no Kubernetes credentials: give --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod with a service account')
}

/** Merges kubeconfig files as kubectl does: the first file to define a name or the current context wins. */
function fromFiles(files: string[]): KubeConfig {
  const clusters = new Map<string, Cluster>()
  const users = new Map<string, User>()
  const contexts = new Map<string, Context>()
  let currentContext: string | undefined
  for (const file of files) {
    const kc = new KubeConfig()
    try {
      kc.loadFromFile(file)
    } catch (error) {
      throw new Error(`kubeconfig ${file}: ${error instanceof Error ? error.message : String(error)}`, {cause: error})
    }
    for (const c of kc.getClusters()) if (!clusters.has(c.name)) clusters.set(c.name, c)
    for (const u of kc.getUsers()) if (!users.has(u.name)) users.set(u.name, u)
    for (const c of kc.getContexts()) if (!contexts.has(c.name)) contexts.set(c.name, c)
    currentContext ||= kc.getCurrentContext() || undefined
  }
  const merged = new KubeConfig()
  merged.loadFromOptions({clusters: [...clusters.values()], users: [...users.values()], contexts: [...contexts.values()], currentContext})
  return merged
}

function inCluster(host: string, port: string, dir: string): KubeConfig {
  const server = `https://${host.includes(':') ? `[${host}]` : host}:${port}`
  const kc = new KubeConfig()
  kc.loadFromOptions({
    clusters: [{name: 'in-cluster', server, caFile: join(dir, 'ca.crt'), skipTLSVerify: false}],
    // A tokenFile user re-reads the token, which the kubelet rotates.
    users: [{name: 'in-cluster', authProvider: {name: 'tokenFile', config: {tokenFile: join(dir, 'token')}}}],
    contexts: [{name: 'in-cluster', cluster: 'in-cluster', user: 'in-cluster'}],
    currentContext: 'in-cluster',
  })
  return kc
}
