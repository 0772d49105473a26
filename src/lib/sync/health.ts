/**
 * What /readyz and /healthz say about the watch loop, read off its state at one moment.
 *
 * Ready means the kernel follows the source and the API hears back: the source has synced and is
 * not failing, the last pass succeeded not long ago, and the verdicts handed to the status
 * writeback have not waited long. Alive means the loop itself still turns: no pass has run far
 * longer than any pass may, and passes keep being scheduled. An API server that hangs makes the
 * daemon unready, never dead: restarting it would not help, and the kernel passes go on.
 */
import type {Liveness, Readiness} from '../observe/server.js'
import type {SourceHealth} from '../source/source.js'
import type {WritebackBacklog} from './writeback.js'

/** A pass that ran: when it ended, and how. */
export type LastPass = {ok: true; at: number} | {ok: false; at: number; error: string}

export interface LoopState {
  now: number
  resyncIntervalMs: number
  /** Longest a pass may run, and longest the loop may go without starting one. */
  stallLimitMs: number
  source: SourceHealth
  /** The last pass that got as far as syncing. */
  last?: LastPass
  /** When the pass in progress started, if one is. */
  passStartedAt?: number
  /** When the loop last started or ended a pass of any kind (skipped, or waiting for the source, included); undefined before it began. */
  lastActivityAt?: number
  writeback?: WritebackBacklog
  /** Why a mass removal is held (guard.ts), while one is. */
  heldRemoval?: string
}

/** One reason not to be ready, or undefined; the checks run in order and the first reason found is the answer. */
type ReadinessCheck = (state: LoopState) => string | undefined

/** The checks in order of what an operator should look at first. */
const READINESS_CHECKS: readonly ReadinessCheck[] = [
  (s) => (s.source.synced ? undefined : 'source not synced yet'),
  (s) => s.heldRemoval,
  (s) => (s.last ? undefined : 'no sync has completed yet'),
  (s) => (s.last?.ok === false ? `last sync failed: ${s.last.error}` : undefined),
  (s) =>
    s.last && s.now - s.last.at > 2 * s.resyncIntervalMs
      ? `no sync has completed for ${seconds(s.now - s.last.at)}, more than twice the resync interval (${seconds(s.resyncIntervalMs)})`
      : undefined,
  // The rules of the last sync keep working, but changes made meanwhile cannot reach the kernel.
  (s) => (s.source.lastError ? 'source failing; the rules of the last sync stay in place' : undefined),
  (s) => (s.writeback && s.now - s.writeback.since > 2 * s.resyncIntervalMs ? unwrittenStatuses(s.now, s.writeback, s.resyncIntervalMs) : undefined),
]

/** Ready when every check passes; `lastError` is the source's own. */
export function readinessOf(state: LoopState): Readiness {
  const withError = state.source.lastError ? {lastError: state.source.lastError} : {}
  for (const check of READINESS_CHECKS) {
    const reason = check(state)
    if (reason !== undefined) return {ready: false, reason, ...withError}
  }
  return {ready: true}
}

/** Alive unless a pass has run past the limit or the loop has gone that long without starting one. */
export function livenessOf(state: LoopState): Liveness {
  const limit = `the limit is ${seconds(state.stallLimitMs)}`
  if (state.passStartedAt !== undefined && state.now - state.passStartedAt > state.stallLimitMs) {
    return {alive: false, reason: `a sync pass has been running for ${seconds(state.now - state.passStartedAt)}; ${limit}`}
  }
  if (state.passStartedAt === undefined && state.lastActivityAt !== undefined && state.now - state.lastActivityAt > state.stallLimitMs) {
    return {alive: false, reason: `no sync pass has started for ${seconds(state.now - state.lastActivityAt)}; ${limit}`}
  }
  return {alive: true}
}

function unwrittenStatuses(now: number, backlog: WritebackBacklog, resyncIntervalMs: number): string {
  const why = backlog.lastError ?? (backlog.runningSince === undefined ? 'waiting' : `writing for ${seconds(now - backlog.runningSince)}`)
  return `Mapping statuses not written for ${seconds(now - backlog.since)}, more than twice the resync interval (${seconds(resyncIntervalMs)}): ${why}`
}

/** `4s`, `1.5s`, `312s`. */
function seconds(ms: number): string {
  return `${Math.round(ms / 100) / 10}s`
}
