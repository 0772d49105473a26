/**
 * Continuous probing of NATed endpoints from one of the lab's client namespaces (traffic-monitor.mjs):
 * a new TCP connection or UDP exchange to every target every ~50 ms, each failure kept with its time.
 * The probe process bounds itself (time and count), ends when the test closes its stdin, and dies
 * with the lab's namespaces at the latest.
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import type {Lab, LabNamespace, LabProtocol} from './lab.js'

const MONITOR = fileURLToPath(new URL('traffic-monitor.mjs', import.meta.url))

export interface MonitorTarget {
  protocol: LabProtocol
  ip: string
  port: number
}

export interface MonitorOptions {
  /** Source address inside the namespace (its first address when absent). */
  source?: string
  /** Between two probes of the same target (default 50). */
  intervalMs?: number
  /** A probe that gets no answer this long is lost (default 1000: a dropped SYN is retried only after 1 s). */
  timeoutMs?: number
  /** The probe process ends by itself after this long (default 600). */
  maxSeconds?: number
}

/** One probe that failed: when it started, where it went, and how it failed (timeout, refused, reset, ...). */
export interface TrafficFailure {
  at: number
  target: string
  error: string
  message: string
}

export interface TrafficReport {
  /** Per target (`tcp:IP:PORT`): probes sent and probes lost. */
  targets: Record<string, {attempts: number; failures: number}>
  failures: TrafficFailure[]
}

export interface TrafficMonitor {
  /** Stops probing, lets the probes in flight finish, and reports. */
  stop(): Promise<TrafficReport>
}

/** `tcp:198.18.0.10:8080`: how reports name a target. */
export function targetName(target: MonitorTarget): string {
  return `${target.protocol}:${target.ip}:${target.port}`
}

/** Starts probing `targets` from namespace `from`; resolves once the first probes are under way. */
export async function startTrafficMonitor<N extends string = LabNamespace>(
  lab: Pick<Lab, 'ns'> | {ns(name: N): string},
  from: N,
  targets: MonitorTarget[],
  options: MonitorOptions = {},
): Promise<TrafficMonitor> {
  const timeoutMs = options.timeoutMs ?? 1000
  const maxSeconds = options.maxSeconds ?? 600
  const args = [
    ...(options.source ? ['--source', options.source] : []),
    '--interval-ms', String(options.intervalMs ?? 50),
    '--timeout-ms', String(timeoutMs),
    '--max-seconds', String(maxSeconds),
    '--max-attempts', String(Math.ceil((maxSeconds * 1000) / (options.intervalMs ?? 50)) + 1),
    ...targets.flatMap((t) => ['--target', targetName(t)]),
  ]
  const child = spawn('ip', ['netns', 'exec', (lab as {ns(name: N): string}).ns(from), process.execPath, MONITOR, ...args], {stdio: ['pipe', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const closed = new Promise<number | null>((resolve) => child.once('close', resolve))
  // The guard is for a monitor that cannot even stop: it bounds itself at maxSeconds.
  const guard = setTimeout(() => child.kill('SIGKILL'), (maxSeconds + 30) * 1000)
  void closed.then(() => clearTimeout(guard))
  await started(child, closed, () => stdout, () => stderr)
  return {
    async stop() {
      child.stdin!.end()
      const kill = setTimeout(() => child.kill('SIGKILL'), timeoutMs + 10_000)
      const code = await closed
      clearTimeout(kill)
      return parseReport(stdout, `traffic monitor in ${from} exited with ${code}: ${stderr.trim()}`)
    },
  }
}

async function started(child: ChildProcess, closed: Promise<number | null>, stdout: () => string, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 10_000
  while (!stdout().startsWith('ready\n')) {
    if (child.exitCode !== null || child.signalCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL')
      await closed
      throw new Error(`traffic monitor did not start: ${stderr().trim()}`)
    }
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

function parseReport(stdout: string, whenBroken: string): TrafficReport {
  const failures: TrafficFailure[] = []
  let targets: TrafficReport['targets'] | undefined
  for (const line of stdout.split('\n').slice(1).filter(Boolean)) {
    const parsed = JSON.parse(line) as TrafficFailure | {summary: TrafficReport['targets']}
    if ('summary' in parsed) targets = parsed.summary
    else failures.push(parsed)
  }
  if (!targets) throw new Error(whenBroken)
  return {targets, failures}
}
