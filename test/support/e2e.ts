/** What the end-to-end tests of the CLI share: sync arguments for a lab, its JSON output, kernel dumps, long-lived UDP flows, waiting for a state. */
import type {BackendName} from '../../src/lib/backend/registry.js'
import type {Conversation} from '../../src/lib/host/conversation.js'
import type {RunOptions, RunResult, Runner} from '../../src/lib/host/runner.js'
import {passedOnConversation} from './passed-on-conversation.js'
import type {Lab, LabNamespace} from './lab.js'
import type {ManifestDir} from './mappings.js'

/** `smartnat sync --json` output, as far as the tests read it. */
export interface SyncJson {
  dryRun: boolean
  mappings: {
    namespace: string
    name: string
    valid: boolean
    reason: string | null
    configuredAddresses: Record<string, {podIPs: string[]}>
    faults: Record<string, string>
  }[]
  configured: number
  invalid: number
  faulty: number
  faults: string[]
  changed: boolean
  written: {sets: number; chains: number; rules: number; routes: number}
  conntrackDeleted: number
}

/** `smartnat flush --json` output. */
export interface FlushJson {
  dryRun: boolean
  changed: boolean
  declined: boolean
  removed: {jumps: string[]; chains: string[]; sets: string[]; ipRules: string[]; routes: string[]}
}

/** The arguments that point a sync or flush at the lab's host namespace, with a lock file of the test's own. */
export function labArgs(lab: Lab, dir: ManifestDir): string[] {
  return ['--netns', lab.ns('host'), '--lock-file', dir.file('smartnat.lock')]
}

/** `sync --from-file DIR --backend NAME` against the lab's host. */
export function syncArgs(backend: BackendName, lab: Lab, dir: ManifestDir, ...flags: string[]): string[] {
  return commandArgs('sync', backend, lab, dir, ...flags)
}

/** `COMMAND --from-file DIR --backend NAME` against the lab's host: sync, watch, status, explain (which takes no lock). */
export function commandArgs(command: 'sync' | 'watch' | 'status' | 'explain', backend: BackendName, lab: Lab, dir: ManifestDir, ...flags: string[]): string[] {
  const host = command === 'explain' ? ['--netns', lab.ns('host')] : labArgs(lab, dir)
  return [command, '--from-file', dir.path, ...host, '--backend', backend, ...flags]
}

/** `iptables-save` without its comment lines and counters: what a person compares between two moments. */
export async function iptablesDump(lab: Lab, name: LabNamespace = 'host'): Promise<string> {
  const {stdout} = await lab.exec(name, 'iptables-save', [])
  return stdout
    .split('\n')
    .filter((line) => !line.startsWith('#'))
    .map((line) => line.replace(/ \[\d+:\d+\]$/, ''))
    .join('\n')
}

/** The host's whole IPv4 network configuration that smartnat could touch: rules, sets, nft tables, ip rules, every routing table. */
export async function kernelDump(lab: Lab): Promise<string> {
  const out = async (command: string, args: string[]) => (await lab.exec('host', command, args)).stdout
  return [
    await iptablesDump(lab),
    await out('ipset', ['save']),
    // Stateless: without the counters iptables-nft's rules carry there.
    await out('nft', ['-s', 'list', 'ruleset']),
    await out('ip', ['-4', 'rule', 'show']),
    await out('ip', ['-4', 'route', 'show', 'table', 'all']),
  ].join('\n')
}

/** A UDP "connection": one socket on a fixed source address:port, so every datagram belongs to the same conntrack entry. */
export async function udpFlow(
  lab: Lab,
  from: LabNamespace,
  source: {ip: string; port: number},
  target: {ip: string; port: number},
  count: number,
  timeoutMs = 1000,
): Promise<string[]> {
  // Each datagram waits for its answer (or the timeout) before the next is sent; the output is one line per datagram.
  const script = `
    import {createSocket} from 'node:dgram'
    const [srcIp, srcPort, dstIp, dstPort, count, timeoutMs] = process.argv.slice(1)
    const socket = createSocket('udp4')
    socket.on('error', () => {})
    await new Promise((resolve) => socket.bind(Number(srcPort), srcIp, resolve))
    for (let i = 0; i < Number(count); i++) {
      const answer = await new Promise((resolve) => {
        const timer = setTimeout(() => resolve('timeout'), Number(timeoutMs))
        socket.once('message', (m) => { clearTimeout(timer); resolve(m.toString().trim()) })
        socket.send('ping\\n', Number(dstPort), dstIp)
      })
      socket.removeAllListeners('message')
      process.stdout.write(answer + '\\n')
    }
    socket.close()
  `
  const args = [source.ip, String(source.port), target.ip, String(target.port), String(count), String(timeoutMs)]
  const {code, lines, stderr} = await lab.runNode(from, ['--input-type=module', '-e', script, ...args], count * timeoutMs + 10_000)
  if (code !== 0 || lines.length !== count) throw new Error(`udp flow from ${source.ip}:${source.port} exited with ${code}: ${stderr.trim()}`)
  return lines
}

/** The `pod=` field of an echo answer line, or the line itself when it is not one (e.g. "timeout"). */
export function podOf(line: string): string {
  return /^pod=(\S+)/.exec(line)?.[1] ?? line
}

/** Retries `attempt` every 100 ms until it returns a value, failing with the last reason after `ms`. */
export async function eventually<T>(what: string, ms: number, attempt: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + ms
  let last: unknown
  for (;;) {
    try {
      const value = await attempt()
      if (value !== undefined) return value
    } catch (error) {
      last = error
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (last: ${(last as Error).message})` : ''}`)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
}

/** Runs through `inner` and keeps every command line (with its payload), so a test can say which commands an apply used. */
export class CommandLogRunner implements Runner {
  readonly calls: {line: string; input?: string}[] = []
  constructor(private readonly inner: Runner) {}

  get commands(): string[] {
    return this.calls.map((call) => call.line)
  }

  /** The calls that are not among `reads`: what changed the kernel. */
  writes(reads: readonly string[]): {line: string; input?: string}[] {
    return this.calls.filter((call) => !reads.includes(call.line))
  }

  run(command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    this.calls.push({line: [command, ...args].join(' '), ...(options?.input === undefined ? {} : {input: options.input})})
    return this.inner.run(command, args, options)
  }

  /** Each question to a kept process is logged as a call of its command with the question as input. */
  converse(command: string, args: string[], options?: {env?: Record<string, string>}): Conversation {
    return passedOnConversation(this.inner, [command, args, options], (input, ask) => {
      this.calls.push({line: [command, ...args].join(' '), input})
      return ask()
    })
  }
}
