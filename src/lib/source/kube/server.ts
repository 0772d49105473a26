/** How the API server of a kubeconfig cluster is reached: the URL kubectl would use, and plain http where it says so. */
import type {Cluster, User} from '@kubernetes/client-node'

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i

/**
 * The cluster as kubectl reaches it. A server without a scheme (`localhost:8080`) gets https:// when TLS
 * is configured (a CA, a client certificate or insecure-skip-tls-verify) and http:// otherwise, as
 * client-go's defaultServerUrlFor does. An http:// server is marked insecure-skip-tls-verify: client-node
 * 1.x (KubeConfig.createAgent) builds a plain http agent only with that explicit opt-in, and over http
 * there is no certificate to verify, so it changes nothing else. The cluster given is not modified.
 */
export function asKubectlReaches(cluster: Cluster, user: User | undefined): Cluster {
  let server = cluster.server
  if (!SCHEME.test(server)) {
    const tls = Boolean(cluster.caFile || cluster.caData || cluster.skipTLSVerify || user?.certFile || user?.certData)
    server = `${tls ? 'https' : 'http'}://${server}`
  }
  const http = isPlainHttp(server)
  if (server === cluster.server && (!http || cluster.skipTLSVerify)) return cluster
  return {...cluster, server, ...(http ? {skipTLSVerify: true} : {})}
}

/** Whether `server` is an http:// URL, where nothing is encrypted. */
export function isPlainHttp(server: string): boolean {
  return /^http:\/\//i.test(server)
}
