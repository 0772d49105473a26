/**
 * What kubectl's ConfirmUsable checks before any request: a server URL it can speak to and credential
 * files that exist and load. client-node reads these files on every request, so a missing one would
 * fail every retry the same way; smartnat refuses it at start instead.
 */
import {readFileSync} from 'node:fs'
import {createSecureContext} from 'node:tls'
import type {Cluster, User} from '@kubernetes/client-node'

/** Throws, naming the cluster or user and the file, when the connection they describe can never work. */
export function confirmUsable(cluster: Cluster, user: User | undefined): void {
  checkServer(cluster)
  if (cluster.caFile) readCredential(`cluster "${cluster.name}"`, 'certificate-authority', cluster.caFile)
  if (!user) return
  const where = `user "${user.name}"`
  const cert = user.certFile ? readCredential(where, 'client-certificate', user.certFile) : pem(user.certData)
  const key = user.keyFile ? readCredential(where, 'client-key', user.keyFile) : pem(user.keyData)
  if (cert && !key) throw new Error(`kubeconfig: ${where} has a client certificate but no client key`)
  if (key && !cert) throw new Error(`kubeconfig: ${where} has a client key but no client certificate`)
  if (cert && key) {
    try {
      createSecureContext({cert, key})
    } catch (error) {
      throw new Error(`kubeconfig: ${where}: client certificate and key do not load together: ${(error as Error).message}`, {cause: error})
    }
  }
  const tokenFile = (user.authProvider as {config?: {tokenFile?: unknown}} | undefined)?.config?.tokenFile
  if (typeof tokenFile === 'string') readCredential(where, 'token file', tokenFile)
}

function checkServer(cluster: Cluster): void {
  let protocol: string | undefined
  try {
    protocol = new URL(cluster.server).protocol
  } catch {
    protocol = undefined
  }
  if (protocol !== 'https:' && protocol !== 'http:') {
    throw new Error(`kubeconfig: cluster "${cluster.name}": server "${cluster.server}" is not an https:// or http:// URL`)
  }
}

function readCredential(where: string, what: string, file: string): Buffer {
  try {
    return readFileSync(file)
  } catch (error) {
    throw new Error(`kubeconfig: ${where}: cannot read ${what} ${file}: ${(error as Error).message}`, {cause: error})
  }
}

/** Inline certificate or key data, base64 as kubeconfig holds it. */
function pem(data: string | undefined): Buffer | undefined {
  return data ? Buffer.from(data, 'base64') : undefined
}
