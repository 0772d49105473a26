/**
 * Each smartnat host holds a coordination.k8s.io/v1 Lease of its own and renews it every quarter of
 * its duration, as kubelets renew their node Leases: the Leases say which hosts are alive, so the
 * status keys of a host that is gone can be told from those of a host that is merely quiet
 * (live-hosts.ts). One renewal and one list per interval, whatever the number of Mappings.
 */
import type {KubeConfig, V1Lease} from '@kubernetes/client-node'
import {silentLogger, type Logger} from '../observe/log.js'
import {describeApiError, httpStatusOf} from '../source/kube/errors.js'
import {DEFAULT_LEASE_DURATION_SECONDS, DEFAULT_LEASE_NAMESPACE, kubeLeaseApi, microTime, type LeaseApi, type LeaseSettings} from '../source/kube/leases.js'
import type {ApiOptions} from '../source/kube/request.js'
import {systemClock, type Clock} from './debounce.js'
import type {LiveHosts} from './live-hosts.js'

/** The label every host Lease carries, so that a list finds them all and nothing else. */
export const HOST_LEASE_LABEL = 'smartnat.aureacentral.com/host-lease'

/** `smartnat-<host>`, made a valid object name (lower case, `[a-z0-9.-]`, at most 253 characters). */
export function leaseName(hostName: string): string {
  const cleaned = hostName.toLowerCase().replaceAll(/[^a-z0-9.-]+/g, '-')
  return `smartnat-${cleaned}`.slice(0, 253).replace(/[^a-z0-9]+$/, '')
}

/** This host's Lease through the API server of `kc`, on the system clock; the default settings when none are given. */
export function openHostLease(kc: KubeConfig, hostName: string, settings: LeaseSettings | undefined, api: ApiOptions, logger: Logger): HostLease {
  const chosen = settings ?? {namespace: DEFAULT_LEASE_NAMESPACE, durationSeconds: DEFAULT_LEASE_DURATION_SECONDS}
  return new HostLease(kubeLeaseApi(kc, api), hostName, chosen, systemClock, logger)
}

/** A Lease as this host saw it: when it last saw it renewed, by its own clock. */
interface SeenLease {
  name: string
  holder: string
  /** The Lease's resourceVersion: it changes with every renewal. */
  version: string
  seenRenewedAt: number
  durationMs: number
}

interface Listed {
  at: number
  leases: SeenLease[]
}

export class HostLease {
  private timer: unknown
  private first: Promise<void> | undefined
  private stopped = false
  private current: V1Lease | undefined
  private renewedAt: number | undefined
  private listed: Listed | undefined
  private lastError: string | undefined

  constructor(
    private readonly api: LeaseApi,
    readonly hostName: string,
    private readonly settings: LeaseSettings,
    private readonly clock: Clock,
    private readonly logger: Logger = silentLogger,
  ) {}

  /**
   * Renews now, then every quarter of the duration until stop(), without waiting: an API server that
   * hangs must not hold up the daemon's start. Never throws: a failure is logged and retried at the next interval.
   */
  start(): void {
    this.first = this.renew().then(() => this.schedule())
  }

  /** Settles once the first renewal after start() has, so that statuses are written knowing whether this host's Lease exists. */
  async started(): Promise<void> {
    await this.first
  }

  stop(): void {
    this.stopped = true
    this.clock.clearTimeout(this.timer)
  }

  /** Creates or renews this host's Lease, then reads every host's; true when both succeeded. */
  async renew(): Promise<boolean> {
    try {
      await this.write()
      this.renewedAt = this.clock.now()
      await this.list()
      if (this.lastError !== undefined) this.logger.info('host Lease renewed again', {lease: `${this.settings.namespace}/${leaseName(this.hostName)}`})
      this.lastError = undefined
      return true
    } catch (error) {
      const text = describeApiError(error)
      if (text !== this.lastError) this.logger.warn('cannot renew this host\'s Lease; other hosts will take its status keys as stale once it expires', {lease: `${this.settings.namespace}/${leaseName(this.hostName)}`, error: text})
      this.lastError = text
      return false
    }
  }

  /** Why the last renewal failed; undefined when it succeeded. */
  failure(): string | undefined {
    return this.lastError
  }

  /**
   * The hosts whose Lease is current, this one included while its own renewal is; undefined when the
   * Leases were not read within one duration, so that nothing is judged on old news.
   */
  live(): LiveHosts | undefined {
    const now = this.clock.now()
    const durationMs = this.settings.durationSeconds * 1000
    if (this.listed === undefined || now - this.listed.at > durationMs) return undefined
    const hosts = new Set(this.listed.leases.filter((lease) => now - lease.seenRenewedAt < lease.durationMs).map((lease) => lease.holder))
    if (this.renewedAt !== undefined && now - this.renewedAt < durationMs) hosts.add(this.hostName)
    else hosts.delete(this.hostName)
    return {hosts}
  }

  /** Reads the Leases again (before removing keys, so that a host started since the last read is not taken for gone). */
  async refresh(): Promise<LiveHosts | undefined> {
    try {
      await this.list()
    } catch (error) {
      this.logger.debug('cannot read the host Leases; stale status keys stay for now', {error: describeApiError(error)})
      return undefined
    }
    return this.live()
  }

  private schedule(): void {
    if (this.stopped) return
    this.timer = this.clock.setTimeout(() => {
      void this.renew().finally(() => this.schedule())
    }, (this.settings.durationSeconds * 1000) / 4)
  }

  private async write(): Promise<void> {
    const {namespace, durationSeconds} = this.settings
    const name = leaseName(this.hostName)
    const now = microTime(new Date(this.clock.now()))
    const spec = {holderIdentity: this.hostName, leaseDurationSeconds: durationSeconds, renewTime: now}
    if (this.current === undefined) {
      try {
        this.current = await this.api.get(namespace, name)
      } catch (error) {
        if (httpStatusOf(error) !== 404) throw error
        this.current = await this.api.create(namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: {name, namespace, labels: {[HOST_LEASE_LABEL]: 'true'}},
          spec: {...spec, acquireTime: now},
        })
        return
      }
    }
    const holder = this.current.spec?.holderIdentity
    if (holder !== undefined && holder !== this.hostName) {
      throw new Error(`Lease ${namespace}/${name} is held by ${holder}, not ${this.hostName}: two hosts have names that make the same Lease name`)
    }
    const next: V1Lease = {...this.current, metadata: {...this.current.metadata, labels: {...this.current.metadata?.labels, [HOST_LEASE_LABEL]: 'true'}}, spec: {...this.current.spec, ...spec}}
    try {
      this.current = await this.api.replace(namespace, name, next)
    } catch (error) {
      // Changed or deleted since it was read: read it afresh at the next renewal.
      this.current = undefined
      throw error
    }
  }

  /**
   * Reads every host's Lease. A Lease counts as renewed when this host sees its resourceVersion change,
   * by this host's clock, as client-go's leader election judges: the renewTime another host writes is
   * never compared with this host's clock, so clocks that disagree make no live host look gone. A Lease
   * seen for the first time counts as just renewed.
   */
  private async list(): Promise<void> {
    const at = this.clock.now()
    const leases = await this.api.list(this.settings.namespace, `${HOST_LEASE_LABEL}=true`)
    const before = new Map((this.listed?.leases ?? []).map((lease) => [lease.name, lease]))
    this.listed = {at, leases: leases.flatMap((lease) => seen(lease, before, at))}
  }
}

/** A Lease as seen at `at`, keeping when it was last seen renewed; nothing for a Lease that names no holder or duration. */
function seen(lease: V1Lease, before: Map<string, SeenLease>, at: number): SeenLease[] {
  const name = lease.metadata?.name
  const holder = lease.spec?.holderIdentity
  const seconds = lease.spec?.leaseDurationSeconds
  if (name === undefined || holder === undefined || seconds === undefined) return []
  const version = lease.metadata?.resourceVersion ?? ''
  const previous = before.get(name)
  const seenRenewedAt = previous !== undefined && previous.version === version ? previous.seenRenewedAt : at
  return [{name, holder, version, seenRenewedAt, durationMs: seconds * 1000}]
}
