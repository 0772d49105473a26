/**
 * smartnat's Prometheus metrics, rendered in the text exposition format 0.0.4.
 *
 * Eight metrics do not need a client library: counters, gauges and one histogram, all in one
 * registry that renders on scrape. Label values are escaped as the format requires
 * (backslash, double quote, newline); HELP text escapes backslash and newline.
 */
import type {WriteCounts} from '../backend/result.js'
import {KindCounts} from '../plan/changed.js'
import type {MappingVerdict} from '../plan/model.js'

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8'

type Labels = Record<string, string>

interface Metric {
  readonly name: string
  render(): string[]
}

abstract class LabeledMetric implements Metric {
  protected readonly values = new Map<string, {labels: Labels; value: number}>()

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly type: 'counter' | 'gauge',
  ) {}

  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels))?.value ?? 0
  }

  protected update(labels: Labels, change: (old: number) => number): void {
    const key = labelKey(labels)
    this.values.set(key, {labels, value: change(this.values.get(key)?.value ?? 0)})
  }

  render(): string[] {
    const lines = header(this.name, this.help, this.type)
    // An unlabeled metric that was never touched still shows its zero, so dashboards see it exists.
    if (this.values.size === 0) lines.push(`${this.name} 0`)
    for (const {labels, value} of [...this.values.values()].sort(byLabels)) lines.push(sample(this.name, labels, value))
    return lines
  }
}

/** A value that only goes up. */
export class Counter extends LabeledMetric {
  constructor(name: string, help: string) {
    super(name, help, 'counter')
  }

  inc(by = 1, labels: Labels = {}): void {
    if (by < 0 || !Number.isFinite(by)) throw new Error(`counter ${this.name}: cannot add ${by}`)
    this.update(labels, (old) => old + by)
  }
}

/** A value that is set. */
export class Gauge extends LabeledMetric {
  constructor(name: string, help: string) {
    super(name, help, 'gauge')
  }

  set(value: number, labels: Labels = {}): void {
    this.update(labels, () => value)
  }
}

/** Observations counted into cumulative buckets, with their sum and count. */
export class Histogram implements Metric {
  private readonly counts: number[]
  private sum = 0
  private count = 0

  constructor(
    readonly name: string,
    private readonly help: string,
    private readonly buckets: readonly number[],
  ) {
    if (buckets.some((b, i) => i > 0 && b <= buckets[i - 1]!)) throw new Error(`histogram ${name}: buckets must increase`)
    this.counts = buckets.map(() => 0)
  }

  observe(value: number): void {
    this.buckets.forEach((bound, i) => {
      if (value <= bound) this.counts[i]!++
    })
    this.sum += value
    this.count++
  }

  render(): string[] {
    const lines = header(this.name, this.help, 'histogram')
    this.buckets.forEach((bound, i) => lines.push(sample(`${this.name}_bucket`, {le: formatNumber(bound)}, this.counts[i]!)))
    lines.push(sample(`${this.name}_bucket`, {le: '+Inf'}, this.count))
    lines.push(sample(`${this.name}_sum`, {}, this.sum))
    lines.push(sample(`${this.name}_count`, {}, this.count))
    return lines
  }
}

/** What the loop tells the metrics after a successful sync. */
export interface SyncRecord {
  seconds: number
  /** Milliseconds since the epoch. */
  finishedAt: number
  verdicts: readonly MappingVerdict[]
  /** Rules smartnat owns in the state just applied (iptables: its chains' rules and jumps; nftables: its table's rules). */
  rulesProgrammed: number
  written: WriteCounts
}

const SYNC_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
const WRITE_KINDS: (keyof WriteCounts)[] = ['chains', 'rules', 'sets', 'routes']
const MAPPING_STATES = ['configured', 'invalid', 'not_local', 'faulty', 'deleting'] as const
const WRITEBACK_FAILURES = ['error', 'timeout'] as const

/** Every metric smartnat exports, and the events that move them. */
export class SmartnatMetrics {
  readonly syncDuration = new Histogram('smartnat_sync_duration_seconds', 'Time one sync pass took, failed passes included.', SYNC_BUCKETS)
  readonly lastSuccessfulSync = new Gauge('smartnat_last_successful_sync_timestamp_seconds', 'When the last sync pass succeeded, in seconds since the epoch (0: never).')
  readonly mappings = new Gauge('smartnat_mappings', 'Mappings by verdict of the last successful sync: programmed here, invalid, valid but with no address on this host, with an address this host cannot serve, or being deleted.')
  readonly rulesProgrammed = new Gauge('smartnat_rules_programmed', 'Rules smartnat owns in the kernel after the last successful sync.')
  readonly apiErrors = new Counter(
    'smartnat_api_errors_total',
    'Failed requests to the Kubernetes API, by kind (Mapping, Service, EndpointSlice, Event), verb and code (HTTP status, timeout, or error).',
  )
  readonly syncErrors = new Counter('smartnat_sync_errors_total', 'Sync passes that failed; the rules applied before stayed in place.')
  readonly kernelWrites = new Counter('smartnat_kernel_writes_total', 'Objects written to the kernel by syncs, by kind (chains, rules, sets, routes).')
  readonly writebackFailures = new Counter(
    'smartnat_status_writeback_failures_total',
    'Status writebacks (one sync\'s Mapping statuses and Events) that failed (reason="error") or ran past --status-timeout (reason="timeout"); the next sync writes again.',
  )
  readonly heldRemoval = new Gauge('smartnat_removal_held', 'Programmed Mappings a held mass removal would remove (0: nothing held); the rules stay until it is allowed.')
  readonly heldPasses = new Counter('smartnat_removals_held_total', 'Sync passes held because they would remove more programmed Mappings than --max-removal allows.')
  readonly manifestReadErrors = new Counter('smartnat_manifest_read_errors_total', 'Reads of the --from-file manifests that failed (unparseable, or changing while read); the last good ones stayed in use.')
  readonly conntrackCleanupFailures = new Counter(
    'smartnat_conntrack_cleanup_failures_total',
    'Sync passes that applied their rules but failed to drop connections to vanished targets; the next pass retries.',
  )
  readonly readsGivenWay = new Counter(
    'smartnat_kernel_reads_given_way_total',
    'Kernel reads of a sync pass that gave way to a change arriving while they ran; each is done again after that change is applied.',
  )
  /** The verdicts of the last passes by state, counted from those that changed. */
  private readonly states = new KindCounts(mappingState)
  private readonly all: Metric[] = [
    this.syncDuration,
    this.lastSuccessfulSync,
    this.mappings,
    this.rulesProgrammed,
    this.apiErrors,
    this.syncErrors,
    this.kernelWrites,
    this.writebackFailures,
    this.heldRemoval,
    this.heldPasses,
    this.manifestReadErrors,
    this.conntrackCleanupFailures,
    this.readsGivenWay,
  ]

  constructor() {
    for (const state of MAPPING_STATES) this.mappings.set(0, {state})
    for (const kind of WRITE_KINDS) this.kernelWrites.inc(0, {kind})
    for (const reason of WRITEBACK_FAILURES) this.writebackFailures.inc(0, {reason})
  }

  syncSucceeded(record: SyncRecord): void {
    this.syncDuration.observe(record.seconds)
    this.lastSuccessfulSync.set(record.finishedAt / 1000)
    for (const state of MAPPING_STATES) this.mappings.set(this.states.count(record.verdicts, state), {state})
    this.rulesProgrammed.set(record.rulesProgrammed)
    for (const kind of WRITE_KINDS) this.kernelWrites.inc(record.written[kind], {kind})
    this.heldRemoval.set(0)
  }

  syncFailed(seconds: number): void {
    this.syncDuration.observe(seconds)
    this.syncErrors.inc()
  }

  writebackFailed(reason: (typeof WRITEBACK_FAILURES)[number]): void {
    this.writebackFailures.inc(1, {reason})
  }

  conntrackCleanupFailed(): void {
    this.conntrackCleanupFailures.inc()
  }

  /** One failed request to the Kubernetes API; `code` is its HTTP status, `timeout`, or `error`. */
  apiError(request: {kind: string; verb: string; code: string}): void {
    this.apiErrors.inc(1, {kind: request.kind, verb: request.verb, code: request.code})
  }

  /** A pass was held: it would have removed `mappings` programmed Mappings. */
  removalHeld(mappings: number): void {
    this.heldRemoval.set(mappings)
    this.heldPasses.inc()
  }

  /** A kernel read gave way to a change; drift repair waits for the read done again after it. */
  readGaveWay(): void {
    this.readsGivenWay.inc()
  }

  manifestReadError(): void {
    this.manifestReadErrors.inc()
  }

  /** The whole exposition, as served on /metrics. */
  render(): string {
    return `${this.all.flatMap((m) => m.render()).join('\n')}\n`
  }
}

function mappingState(v: MappingVerdict): (typeof MAPPING_STATES)[number] {
  // Held by a finalizer, not broken: no alert on invalid Mappings should fire for it.
  if (v.deleting !== undefined) return 'deleting'
  if (!v.valid) return 'invalid'
  if (v.faults !== undefined) return 'faulty'
  return Object.keys(v.configuredAddresses).length > 0 ? 'configured' : 'not_local'
}

function header(name: string, help: string, type: string): string[] {
  return [`# HELP ${name} ${help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${name} ${type}`]
}

function sample(name: string, labels: Labels, value: number): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
  return `${name}${pairs.length > 0 ? `{${pairs.join(',')}}` : ''} ${formatNumber(value)}`
}

/** A sample value as the format spells it: `+Inf`, `-Inf`, `NaN`, or a Go-parsable float. */
export function formatNumber(value: number): string {
  if (Number.isNaN(value)) return 'NaN'
  if (value === Infinity) return '+Inf'
  if (value === -Infinity) return '-Inf'
  return String(value)
}

function labelKey(labels: Labels): string {
  return JSON.stringify(Object.entries(labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

function byLabels(a: {labels: Labels}, b: {labels: Labels}): number {
  const [x, y] = [labelKey(a.labels), labelKey(b.labels)]
  return x < y ? -1 : x > y ? 1 : 0
}
