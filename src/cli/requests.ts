/**
 * Each command's parsed flags as the typed request of its one library call. Every function throws
 * an Error whose message names the flag at fault, checking flags in the order the command lists them.
 */
import type {BackendName} from '../lib/backend/registry.js'
import type {ExplainTarget} from '../lib/app/explain.js'
import type {HostOptions, RunnerOptions} from '../lib/app/host.js'
import type {InspectRequest} from '../lib/app/inspect.js'
import type {SyncRequest} from '../lib/app/sync.js'
import type {WatchRequest} from '../lib/app/watch.js'
import {parsePacketSpec} from '../lib/explain/packet.js'
import {DEFAULT_RT_TABLES} from '../lib/host/rt-tables.js'
import {toolVersionsPath} from '../lib/host/tool-versions.js'
import type {LogLevel} from '../lib/observe/log.js'
import {parseListenAddress} from '../lib/observe/listen-address.js'
import {oneShotGuard} from '../lib/sync/guard.js'
import {flagDuration} from './duration.js'
import {leaseSettings, lockOptions, removalPolicy, sourceOptions, syncSettings, type PlanFlagValues, type SourceFlagValues} from './flags.js'

type RunnerFlagValues = {'command-timeout': number; netns?: string}
type HostFlagValues = RunnerFlagValues & {backend: BackendName; 'forward-accept': boolean}
type LockFlagValues = {'lock-file': string; 'lock-wait': number}

/** How commands are run on the host: --command-timeout, --netns. */
export function runnerOptions(flags: RunnerFlagValues): RunnerOptions {
  return {commandTimeoutSeconds: flags['command-timeout'], ...(flags.netns ? {netns: flags.netns} : {})}
}

/** The backend and how it runs its commands. */
function hostOptions(flags: HostFlagValues): HostOptions {
  return {...runnerOptions(flags), backend: flags.backend, forwardAccept: flags['forward-accept']}
}

type SyncFlagValues = PlanFlagValues &
  HostFlagValues &
  LockFlagValues & {
    'max-removal': string
    'allow-mass-removal': boolean
    'dry-run': boolean
    'assume-addresses'?: string
    full: boolean
    migrate?: boolean
    'rt-tables'?: string
  }

/** `smartnat sync`'s request; its source is opened apart (see openSyncSource). */
export function syncRequest(flags: SyncFlagValues): SyncRequest {
  const settings = syncSettings(flags)
  const removalGuard = oneShotGuard(removalPolicy(flags), flags['allow-mass-removal'])
  return {
    host: hostOptions(flags),
    settings,
    dryRun: flags['dry-run'],
    ...(flags['assume-addresses'] ? {assumeAddresses: flags['assume-addresses']} : {}),
    full: flags.full,
    removalGuard,
    lock: lockOptions(flags, 'sync'),
    toolVersions: toolVersionsPath(flags['lock-file']),
    ...(flags.migrate ? {migrate: {rtTables: flags['rt-tables'] ?? DEFAULT_RT_TABLES}} : {}),
  }
}

type WatchFlagValues = SourceFlagValues &
  PlanFlagValues &
  HostFlagValues &
  LockFlagValues & {
    'lease-namespace': string
    'lease-duration': string
    'max-removal': string
    'removal-delay': number
    resync: string
    'min-sync-interval': string
    'status-timeout': string
    'metrics-addr': string
    'log-level': string
    'flush-on-exit': boolean
  }

/** `smartnat watch`'s request, with the warnings its log starts with; its log is text on a terminal, JSON lines elsewhere. */
export function watchRequest(flags: WatchFlagValues, warnings: string[] = []): WatchRequest {
  const resyncMs = flagDuration('resync', flags.resync)
  const minIntervalMs = flagDuration('min-sync-interval', flags['min-sync-interval'])
  const writebackDeadlineMs = flagDuration('status-timeout', flags['status-timeout'])
  try {
    parseListenAddress(flags['metrics-addr'])
  } catch (error) {
    throw new Error(`--metrics-addr: ${(error as Error).message}`, {cause: error})
  }
  const settings = syncSettings(flags)
  const policy = removalPolicy(flags)
  return {
    source: {...sourceOptions(flags), lease: leaseSettings(flags)},
    host: hostOptions(flags),
    settings,
    resync: {ms: resyncMs, text: flags.resync},
    minIntervalMs,
    writebackDeadlineMs,
    massRemoval: {policy, delayMs: flags['removal-delay'] * resyncMs},
    metricsAddress: flags['metrics-addr'],
    lock: {path: flags['lock-file'], waitMs: flags['lock-wait'] * 1000},
    flushOnExit: flags['flush-on-exit'],
    toolVersions: toolVersionsPath(flags['lock-file']),
    log: {level: flags['log-level'] as LogLevel, format: process.stdout.isTTY ? 'text' : 'json'},
    warnings,
  }
}

/** What `status` and `explain` read and how they plan it. */
export function inspectRequest(flags: SourceFlagValues & PlanFlagValues & HostFlagValues): InspectRequest {
  const settings = syncSettings(flags)
  return {source: sourceOptions(flags), host: hostOptions(flags), settings}
}

/** `smartnat explain`'s request and what it explains: the Mapping argument, or the packet of --src and --dst. */
export function explainRequest(
  mapping: string | undefined,
  flags: SourceFlagValues & PlanFlagValues & HostFlagValues & {namespace?: string; src?: string; dst?: string; 'in-interface'?: string},
): {request: InspectRequest; target: ExplainTarget} {
  if (mapping !== undefined && flags.src !== undefined) throw new Error('give either a Mapping or --src/--dst, not both')
  if (mapping === undefined && flags.src === undefined) throw new Error('give a Mapping (NAMESPACE/NAME) or a packet (--src IP --dst IP:PORT)')
  const request = inspectRequest(flags)
  if (flags.src !== undefined) return {request, target: {packet: parsePacketSpec(flags.src, flags.dst!, flags['in-interface'])}}
  return {request, target: {mapping: mappingId(mapping!, flags.namespace)}}
}

/** `ns/name`, or `name` in -n's namespace, or in "default" like kubectl. */
function mappingId(text: string, namespace: string | undefined): string {
  const parts = text.split('/')
  if (parts.length > 2 || parts.some((p) => p === '')) throw new Error(`mapping "${text}": expected NAMESPACE/NAME or NAME`)
  if (parts.length === 2) {
    if (namespace !== undefined && namespace !== parts[0]) throw new Error(`mapping "${text}" names namespace ${parts[0]}, but -n says ${namespace}`)
    return text
  }
  return `${namespace ?? 'default'}/${text}`
}
