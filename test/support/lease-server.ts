/**
 * What the Lease tests (the host Lease, the allocator Lease) share: the test API server with the Lease
 * namespace and every request logged, a client's Lease API for it, and a clock the test moves.
 */
import {KubeConfig, type V1Lease} from '@kubernetes/client-node'
import {kubeLeaseApi, type LeaseApi} from '../../src/lib/source/kube/leases.js'
import type {Clock} from '../../src/lib/sync/debounce.js'
import {startApiServer, type ApiServer} from './apiserver/index.js'

/** Where every StepClock starts unless told otherwise. */
export const T0 = Date.parse('2026-01-01T00:00:00Z')
export const LEASE_SETTINGS = {namespace: 'smartnat-system', durationSeconds: 40}

/** Time moves only when the test says so; the one timer set is kept, to be fired by hand or never. */
export class StepClock implements Clock {
  timer: (() => void) | undefined
  constructor(public time = T0) {}
  now(): number {
    return this.time
  }
  setTimeout(callback: () => void): unknown {
    this.timer = callback
    return callback
  }
  clearTimeout(handle: unknown): void {
    if (this.timer === handle) this.timer = undefined
  }
}

export interface LeaseServer {
  server: ApiServer
  /** Every request the server answered, one line each (`PUT /apis/...`). */
  requests: string[]
  /** A new client's Lease API against the server. */
  leaseApi(): LeaseApi
  /** The stored Lease `name` in the Lease namespace. */
  stored(name: string): V1Lease
  /** The requests that wrote a Lease (POST or PUT). */
  leaseWrites(): string[]
}

/** Starts the test API server with the Lease namespace (smartnat-system), logging every request. */
export async function startLeaseServer(): Promise<LeaseServer> {
  const requests: string[] = []
  const server = await startApiServer({log: (line) => requests.push(line)})
  server.api.create(server.types.namespaces, undefined, {metadata: {name: LEASE_SETTINGS.namespace}})
  const kc = new KubeConfig()
  kc.loadFromString(server.kubeconfig())
  const leaseType = server.types.leases
  return {
    server,
    requests,
    leaseApi: () => kubeLeaseApi(kc),
    stored: (name) => server.api.get(leaseType, LEASE_SETTINGS.namespace, name) as unknown as V1Lease,
    leaseWrites: () => requests.filter((r) => /^(POST|PUT) .*\/leases/.test(r)),
  }
}
