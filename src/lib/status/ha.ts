/** An HA pair's side of `smartnat status`: which floating addresses this host holds, and whether conntrackd's sync works. */
import {readSyncLink, type SyncLinkSample} from '../host/conntrackd.js'
import {readAssignedAddresses} from '../host/interfaces.js'
import type {Runner} from '../host/runner.js'
import type {FloatingAddress} from '../plan/floating.js'

export interface FloatingStatus {
  address: string
  interface: string
  /** `active`: keepalived has assigned the address here now; `standby`: it is the peer's (or nobody's). */
  role: 'active' | 'standby'
}

export interface SyncStatus {
  healthy: boolean
  /** The sync link's interface and its state as conntrackd sees it; null when conntrackd did not answer. */
  device: string | null
  linkStatus: string | null
  /** Packets received from the peer while status watched; null when conntrackd did not answer. */
  packetsFromPeer: number | null
  /** Why the sync is not healthy; null when it is. */
  problem: string | null
}

export interface HaStatus {
  floating: FloatingStatus[]
  sync: SyncStatus
}

export interface HaStatusOptions {
  floating: readonly FloatingAddress[]
  /** conntrackd's configuration file: its control socket is named there. */
  conntrackdConfig: string
  /** How long to watch the sync link for the peer's messages (FTFW sends one a second at least). */
  sampleMs: number
  /** Waits `ms`; tests pass one that returns at once. */
  sleep: (ms: number) => Promise<void>
}

/** Reads the floating addresses' roles and samples conntrackd's sync link twice, `sampleMs` apart; changes nothing. */
export async function gatherHaStatus(runner: Runner, options: HaStatusOptions): Promise<HaStatus> {
  const assigned = await readAssignedAddresses(runner)
  const floating = options.floating.map((f): FloatingStatus => ({
    address: f.address,
    interface: f.interface,
    role: assigned.has(`${f.interface}=${f.address}`) ? 'active' : 'standby',
  }))
  return {floating, sync: await syncStatus(runner, options)}
}

async function syncStatus(runner: Runner, options: HaStatusOptions): Promise<SyncStatus> {
  let first: SyncLinkSample
  let last: SyncLinkSample
  try {
    first = await readSyncLink(runner, options.conntrackdConfig)
    await options.sleep(options.sampleMs)
    last = await readSyncLink(runner, options.conntrackdConfig)
  } catch (error) {
    return {healthy: false, device: null, linkStatus: null, packetsFromPeer: null, problem: `${(error as Error).message}: connections are not replicated`}
  }
  const packetsFromPeer = Math.max(0, last.packetsReceived - first.packetsReceived)
  const seen = {device: last.device, linkStatus: last.status, packetsFromPeer}
  if (last.status !== 'RUNNING') {
    return {healthy: false, ...seen, problem: `conntrackd's sync link ${last.device} is ${last.status}: connections are not replicated`}
  }
  if (packetsFromPeer === 0) {
    return {healthy: false, ...seen, problem: `conntrackd heard nothing from its peer on ${last.device} in ${options.sampleMs} ms: the peer's conntrackd is down or unreachable`}
  }
  return {healthy: true, ...seen, problem: null}
}
