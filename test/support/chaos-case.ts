/**
 * One chaos case: a fresh `smartnat watch` against a clean lab host, traffic monitors on the Mappings
 * the fault leaves alone, the fault and the recovery (the case's body), then one report row and the
 * verdict: not one probe lost. Daemon, monitors and /readyz sampling end however the body ends.
 */
import type {LabBackend} from './backends.js'
import {cleanHost} from './backends.js'
import type {ChaosRow} from './chaos-report.js'
import {eventually, labArgs} from './e2e.js'
import {freePort} from './http.js'
import type {Lab, LabNamespace} from './lab.js'
import type {ManifestDir} from './mappings.js'
import {startTrafficMonitor, targetName, type MonitorTarget, type TrafficMonitor, type TrafficReport} from './traffic-monitor.js'
import {ReadinessRecorder, WatchDaemon} from './watch-daemon.js'

/** Pods behind the lab's Service: an answer from anything else is not the Mapping working. */
const LAB_PODS = ['198.19.200.11', '198.19.200.12']

/** Targets probed from one client namespace, from one of its addresses. */
export interface MonitorGroup {
  from: LabNamespace
  source: string
  targets: MonitorTarget[]
}

/** What a case's body works with, and what it reports back. */
export interface CaseRun {
  lab: Lab
  backend: LabBackend
  daemon: WatchDaemon
  readiness: ReadinessRecorder
  /** The daemon's /metrics port. */
  port: number
  /** When the fault was injected (the body sets it; the monitors' start until then). */
  faultStart: number
  /** When the fault was lifted, or the daemon restarted after the last kill (the body sets it). */
  faultEnd?: number
  /** Anything the table should say about this run (what a kill interrupted, how long a Mapping took to come back). */
  notes: string[]
}

export interface ChaosCase {
  name: string
  lab: Lab
  backend: LabBackend
  /** Holds the lock file (and whatever else the case keeps there). */
  dir: ManifestDir
  /** Where the daemon reads Mappings: `--from-file DIR` or `--kubeconfig FILE`. */
  source: string[]
  /** The daemon's --resync (default 2s). */
  resync?: string
  monitors: MonitorGroup[]
  /** Bounds the daemon and the monitors however the case goes. */
  limitSeconds: number
  body(run: CaseRun): Promise<void>
}

/** The answering pod when a request from `from` reaches the lab's Service through `target`, else undefined. */
export async function reachesPod(lab: Lab, from: LabNamespace, source: string, target: MonitorTarget): Promise<string | undefined> {
  const [result] = await lab.requests(target.protocol, from, source, target.ip, target.port, 1, {timeoutMs: 500})
  return result!.ok && LAB_PODS.includes(result!.fields.pod!) ? result!.fields.pod : undefined
}

/** Waits (at most `ms`) until `target` reaches a pod; how long it took. */
export async function waitReachable(lab: Lab, group: Omit<MonitorGroup, 'targets'>, target: MonitorTarget, what: string, ms: number): Promise<number> {
  const started = Date.now()
  await eventually(`${what} (${targetName(target)} from ${group.from})`, ms, () => reachesPod(lab, group.from, group.source, target))
  return Date.now() - started
}

/** Runs one case and records its row; then throws if the body failed or a probe was lost. */
export async function runChaosCase(spec: ChaosCase, record: (row: ChaosRow) => void): Promise<void> {
  const {lab, backend} = spec
  await cleanHost(lab, backend)
  const port = await freePort()
  const args = ['watch', ...spec.source, ...labArgs(lab, spec.dir), '--backend', backend.name, '--metrics-addr', `127.0.0.1:${port}`, '--resync', spec.resync ?? '2s', '--log-level', 'debug']
  const startedAt = Date.now()
  const daemon = new WatchDaemon(args, spec.limitSeconds * 1000)
  const readiness = new ReadinessRecorder(port)
  const run: CaseRun = {lab, backend, daemon, readiness, port, faultStart: startedAt, notes: []}
  const monitors: TrafficMonitor[] = []
  const problems: string[] = []
  try {
    await readiness.waitReady(startedAt, 60_000)
    for (const group of spec.monitors) {
      for (const target of group.targets) await waitReachable(lab, group, target, 'reachable before the fault', 15_000)
    }
    for (const group of spec.monitors) {
      monitors.push(await startTrafficMonitor(lab, group.from, group.targets, {source: group.source, maxSeconds: spec.limitSeconds}))
    }
    run.faultStart = Date.now()
    await spec.body(run)
  } catch (error) {
    problems.push((error as Error).message)
  }
  const end = run.faultEnd ?? Date.now()
  const reports: TrafficReport[] = []
  for (const monitor of monitors) {
    await monitor.stop().then((report) => reports.push(report), (error: Error) => problems.push(error.message))
  }
  await daemon.stop()
  await readiness.stop()

  const failures = reports.flatMap((r) => r.failures).sort((a, b) => a.at - b.at)
  const probes = reports.reduce((n, r) => n + Object.values(r.targets).reduce((m, t) => m + t.attempts, 0), 0)
  if (failures.length > 0) {
    const shown = failures.slice(0, 10).map((f) => `  ${((f.at - run.faultStart) / 1000).toFixed(2)} s after the fault: ${f.target} ${f.error} (${f.message})`)
    // Traffic lost is the headline, whatever else went wrong.
    problems.unshift(`${failures.length} of ${probes} probes to untouched Mappings were lost:\n${shown.join('\n')}`)
  }
  const readyAgain = run.faultEnd === undefined ? undefined : readiness.readyAfter(run.faultEnd)
  record({
    case: spec.name,
    backend: backend.name,
    faultSeconds: (end - run.faultStart) / 1000,
    probes,
    lost: failures.length,
    notReadySeconds: readiness.notReadyMs(run.faultStart, end + (readyAgain ?? 0)) / 1000,
    readyAgainSeconds: readyAgain === undefined ? undefined : readyAgain / 1000,
    outcome: problems.length === 0 ? 'ok' : `FAIL: ${problems[0]!.split('\n')[0]!.replace(/:$/, '')}`,
    notes: run.notes,
  })
  if (problems.length > 0) throw new Error(`${problems.join('\n')}\n--- watch log ---\n${daemon.tail()}`)
}
