/**
 * Which smartnat instance decides new allocations: the holder of the coordination.k8s.io/v1 Lease
 * `smartnat-allocator` in the Lease namespace, elected as client-go's leader election does. Every
 * instance tries to take or renew it every quarter of its duration, each write conditional on the
 * resourceVersion it read (a 409 means another instance wrote first). A Lease held by another is
 * taken over only once this instance has seen it unchanged for its whole leaseDurationSeconds, by
 * this instance's own clock; the holder stops deciding after two thirds of that without a renewal,
 * so the old holder has stopped before a new one starts. A holder that stops cleanly releases it.
 *
 * Nothing here knows what is allocated: LoadBalancer addresses use it (allocation.ts), and any other
 * allocator (pool addresses or dynamic ports of Mappings) asks the same `holds()` before it writes.
 */
import {randomBytes} from 'node:crypto'
import type {KubeConfig, V1Lease} from '@kubernetes/client-node'
import {silentLogger, type Logger} from '../observe/log.js'
import {describeApiError, httpStatusOf} from '../source/kube/errors.js'
import {DEFAULT_LEASE_DURATION_SECONDS, DEFAULT_LEASE_NAMESPACE, kubeLeaseApi, microTime, type LeaseApi, type LeaseSettings} from '../source/kube/leases.js'
import type {ApiOptions} from '../source/kube/request.js'
import {systemClock, type Clock} from './debounce.js'

/** The one Lease whose holder allocates. */
export const ALLOCATOR_LEASE_NAME = 'smartnat-allocator'

/** What an allocator asks before it writes a new decision. */
export interface AllocatorLeadership {
  /** True while this instance holds the allocator Lease and renewed it recently enough to be sure no other does. */
  holds(): boolean
  /** Counts the times this instance acquired the Lease: a new term means others may have decided since its last. */
  term(): number
}

/** This instance's identity in the Lease: the host name and a random suffix, so that two instances on one host are told apart. */
export function allocatorIdentity(hostName: string): string {
  return `${hostName}_${randomBytes(4).toString('hex')}`
}

/** The allocator Lease through the API server of `kc`, on the system clock, with the host Lease's settings. */
export function openAllocatorLease(kc: KubeConfig, hostName: string, settings: LeaseSettings | undefined, api: ApiOptions, logger: Logger): AllocatorLease {
  const chosen = settings ?? {namespace: DEFAULT_LEASE_NAMESPACE, durationSeconds: DEFAULT_LEASE_DURATION_SECONDS}
  return new AllocatorLease(kubeLeaseApi(kc, api), allocatorIdentity(hostName), chosen, systemClock, logger)
}

export class AllocatorLease implements AllocatorLeadership {
  private timer: unknown
  private stopped = false
  private attempt: Promise<boolean> | undefined
  /** The Lease as this instance last wrote or read it. */
  private current: V1Lease | undefined
  /** When the last successful take or renewal was sent, by this instance's clock. */
  private heldSince: number | undefined
  /** The other holder's Lease version, and when this instance first saw it. */
  private observed: {version: string; at: number} | undefined
  private terms = 0
  private lastError: string | undefined

  constructor(
    private readonly api: LeaseApi,
    readonly identity: string,
    private readonly settings: LeaseSettings,
    private readonly clock: Clock,
    private readonly logger: Logger = silentLogger,
  ) {}

  /** Tries now, then every quarter of the duration until stop(); never throws. */
  start(): void {
    void this.tryHold().finally(() => this.schedule())
  }

  /** Stops trying; a holder gives the Lease up, so that another instance takes over at its next try instead of after expiry. */
  async stop(): Promise<void> {
    this.stopped = true
    this.clock.clearTimeout(this.timer)
    await this.attempt
    if (!this.holds() || this.current === undefined) return
    this.heldSince = undefined
    const {namespace} = this.settings
    const released: V1Lease = {...this.current, spec: {...this.current.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date(this.clock.now()))}}
    try {
      await this.api.replace(namespace, ALLOCATOR_LEASE_NAME, released)
      this.logger.info('allocator Lease released', {lease: `${namespace}/${ALLOCATOR_LEASE_NAME}`, identity: this.identity})
    } catch (error) {
      this.logger.warn('cannot release the allocator Lease; another instance takes it over once it expires', {error: describeApiError(error)})
    }
  }

  /** How long the Lease lasts without renewal. */
  get durationSeconds(): number {
    return this.settings.durationSeconds
  }

  holds(): boolean {
    return this.heldSince !== undefined && this.clock.now() - this.heldSince < (this.settings.durationSeconds * 1000 * 2) / 3
  }

  term(): number {
    return this.terms
  }

  /** Takes the Lease when it is free or expired, renews it when held; true when this instance holds it afterwards. */
  async tryHold(): Promise<boolean> {
    this.attempt = this.acquireOrRenew()
    return await this.attempt
  }

  private async acquireOrRenew(): Promise<boolean> {
    const sentAt = this.clock.now()
    const {namespace, durationSeconds} = this.settings
    try {
      const lease = this.current ?? (await this.read())
      const now = microTime(new Date(sentAt))
      if (lease === undefined) {
        this.current = await this.api.create(namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: {name: ALLOCATOR_LEASE_NAME, namespace},
          spec: {holderIdentity: this.identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: 0},
        })
        return this.acquired(sentAt)
      }
      const holder = lease.spec?.holderIdentity ?? ''
      const mine = holder === this.identity
      if (!mine && holder !== '' && !this.expired(lease, sentAt)) return this.follows(holder)
      const spec = mine
        ? {...lease.spec, leaseDurationSeconds: durationSeconds, renewTime: now}
        : {...lease.spec, holderIdentity: this.identity, leaseDurationSeconds: durationSeconds, acquireTime: now, renewTime: now, leaseTransitions: (lease.spec?.leaseTransitions ?? 0) + 1}
      this.current = await this.api.replace(namespace, ALLOCATOR_LEASE_NAME, {...lease, spec})
      return mine && this.heldSince !== undefined ? this.renewed(sentAt) : this.acquired(sentAt)
    } catch (error) {
      // Changed since read (409), deleted, or the API failing: read it afresh at the next try.
      this.current = undefined
      if (httpStatusOf(error) === 409) return this.follows('another instance')
      const text = describeApiError(error)
      if (text !== this.lastError) this.logger.warn('cannot read or renew the allocator Lease; allocations wait while it is not held', {lease: `${namespace}/${ALLOCATOR_LEASE_NAME}`, error: text})
      this.lastError = text
      return this.holds()
    }
  }

  private async read(): Promise<V1Lease | undefined> {
    try {
      return await this.api.get(this.settings.namespace, ALLOCATOR_LEASE_NAME)
    } catch (error) {
      if (httpStatusOf(error) === 404) return undefined
      throw error
    }
  }

  /**
   * Whether another's Lease is expired: this instance has seen its version unchanged for its whole
   * duration. A Lease seen for the first time (always, for a one-shot sync) is judged by its renewTime
   * instead, with a whole duration more for clocks that disagree.
   */
  private expired(lease: V1Lease, at: number): boolean {
    const version = lease.metadata?.resourceVersion ?? ''
    const durationMs = (lease.spec?.leaseDurationSeconds ?? this.settings.durationSeconds) * 1000
    const renewed = lease.spec?.renewTime === undefined ? Number.NaN : new Date(lease.spec.renewTime).getTime()
    if (this.observed?.version !== version) {
      this.observed = {version, at}
      return at - renewed >= 2 * durationMs
    }
    return at - this.observed.at >= durationMs
  }

  private acquired(sentAt: number): boolean {
    this.heldSince = sentAt
    this.terms++
    this.lastError = undefined
    this.logger.info('allocator Lease acquired: this instance decides new allocations', {lease: `${this.settings.namespace}/${ALLOCATOR_LEASE_NAME}`, identity: this.identity})
    return true
  }

  private renewed(sentAt: number): boolean {
    this.heldSince = sentAt
    this.lastError = undefined
    return true
  }

  private follows(holder: string): boolean {
    // Another holds it: read it afresh next time, to see it renewed or released.
    this.current = undefined
    if (this.heldSince !== undefined) this.logger.info('allocator Lease lost: following the allocations another instance records', {holder})
    this.heldSince = undefined
    this.lastError = undefined
    return false
  }

  private schedule(): void {
    if (this.stopped) return
    this.timer = this.clock.setTimeout(() => {
      void this.tryHold().finally(() => this.schedule())
    }, (this.settings.durationSeconds * 1000) / 4)
  }
}
