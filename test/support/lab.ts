/**
 * A network-namespace lab: outside clients, two routers, a smartnat host and a cluster node.
 * Root only. Every namespace is named `snl-<pid>-<n>-<role>` and removed by `destroy()`,
 * by `withLab()` however the body ends, and at process exit for any lab still standing.
 *
 *   client1                     rtr1                          host                        node
 *   eth0 198.18.1.2/24 ─── down0 198.18.1.1    up0 198.18.0.1 ─── eth1 198.18.0.10/24     (plays kube-proxy)
 *        198.18.1.3/24                                             198.18.0.11/24
 *                                                                  198.18.0.12/24
 *                                                             cluster0 198.18.4.1/24 ─── host0 198.18.4.2/24
 *   client2                     rtr2
 *   eth0 198.18.3.2/24 ─── down0 198.18.3.1    up0 198.18.2.1 ─── eth2 198.18.2.10/24     lo: pods 198.19.200.x/32
 *
 * host:  ip_forward=1; main table: default via 198.18.0.1 (eth1 only),
 *        198.19.100.0/24 (Service VIPs) and 198.19.200.0/24 (pods) via 198.18.4.2;
 *        rp_filter strict (1) on eth1 and eth2 unless told otherwise, 0 in `all`.
 * rtr1/rtr2: forward between their two links only; rtr1 knows no route to 198.18.3.0/24 and
 *        rtr2 none to 198.18.1.0/24, so a reply to client2 that follows the host's main
 *        default route (out of eth1) is lost: only per-interface reply routing gets it back.
 * node:  default via 198.18.4.1; VIP:port is DNATed round-robin (statistic nth) to pod:targetPort
 *        in nat PREROUTING and OUTPUT; a VIP port without pods hits `unreachable 198.19.100.0/24`.
 *        Pods are /32 addresses on the node's lo (so no dummy kernel module is needed), each
 *        with its own echo server answering "pod=<ip> proto=<tcp|udp> port=<port> from=<source it saw>".
 * All namespaces: icmp_ratelimit=0, so refusals and unreachables are reported every time.
 *
 * With `kubeProxy: false` (the lab for mode direct) the node stands in for a cluster node without
 * kube-proxy: nothing DNATs there, it only routes to its pods (an address it no longer holds hits
 * `unreachable 198.19.200.0/24`), and the host has no route to the Service VIPs.
 */
import {spawn, spawnSync, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'
import {deleteConntrackFlows} from '../../src/lib/host/conntrack.js'
import {ExecRunner, type RunOptions, type RunResult} from '../../src/lib/host/runner.js'
import {cidrContains, parseIpv4, type Cidr, type Ipv4} from '../../src/lib/net/ipv4.js'
import {requireOrSkip, unmetNeeds} from './requirements.js'

export type LabNamespace = 'client1' | 'client2' | 'rtr1' | 'rtr2' | 'host' | 'node'
export type LabProtocol = 'tcp' | 'udp'

const NAMESPACES: LabNamespace[] = ['client1', 'client2', 'rtr1', 'rtr2', 'host', 'node']

/** The lab's addressing plan; every address is in 198.18.0.0/15. */
export const LAB_PLAN = {
  client1: {interface: 'eth0', addresses: ['198.18.1.2', '198.18.1.3'], prefixLength: 24, gateway: '198.18.1.1'},
  client2: {interface: 'eth0', addresses: ['198.18.3.2'], prefixLength: 24, gateway: '198.18.3.1'},
  rtr1: {down: '198.18.1.1', up: '198.18.0.1'},
  rtr2: {down: '198.18.3.1', up: '198.18.2.1'},
  host: {
    eth1: {addresses: ['198.18.0.10', '198.18.0.11', '198.18.0.12'], prefixLength: 24, gateway: '198.18.0.1'},
    eth2: {addresses: ['198.18.2.10'], prefixLength: 24, gateway: '198.18.2.1'},
    cluster0: {address: '198.18.4.1', prefixLength: 24},
    /** The main table's only default route. */
    defaultGateway: '198.18.0.1',
  },
  node: {address: '198.18.4.2', prefixLength: 24},
  serviceCidr: '198.19.100.0/24',
  podCidr: '198.19.200.0/24',
} as const

/** A ClusterIP Service port as kube-proxy on the node sees it. */
export interface LabService {
  vip: string
  protocol: LabProtocol
  port: number
  targetPort: number
  /** Pod IPs, in the order the round-robin visits them. */
  pods: string[]
}

/** A pod: an address on the node with an echo server on the given ports. */
export interface LabPod {
  ip: string
  tcp?: number[]
  udp?: number[]
}

/** Two pods serving tcp/8080 and udp/5353. */
export const LAB_DEFAULT_PODS: LabPod[] = [
  {ip: '198.19.200.11', tcp: [8080], udp: [5353]},
  {ip: '198.19.200.12', tcp: [8080], udp: [5353]},
]

/** VIP 198.19.100.10: tcp/80 -> 8080 and udp/53 -> 5353 on both default pods. */
export const LAB_DEFAULT_SERVICES: LabService[] = [
  {vip: '198.19.100.10', protocol: 'tcp', port: 80, targetPort: 8080, pods: ['198.19.200.11', '198.19.200.12']},
  {vip: '198.19.100.10', protocol: 'udp', port: 53, targetPort: 5353, pods: ['198.19.200.11', '198.19.200.12']},
]

/** Three pods serving tcp/8080 and udp/5353: the lab for mode direct. */
export const LAB_DIRECT_PODS: LabPod[] = [
  {ip: '198.19.200.11', tcp: [8080], udp: [5353]},
  {ip: '198.19.200.12', tcp: [8080], udp: [5353]},
  {ip: '198.19.200.13', tcp: [8080], udp: [5353]},
]

export interface LabOptions {
  pods?: LabPod[]
  services?: LabService[]
  /** Whether the node translates Service VIPs to pods as kube-proxy would (default true); false: it only routes to its pods. */
  kubeProxy?: boolean
  /** rp_filter of the host's eth1 and eth2 (default 1, strict, which smartnat must relax). */
  hostRpFilter?: 0 | 1 | 2
  /** Echo servers exit by themselves after this long (default 300). */
  echoLifetimeSeconds?: number
}

export type EchoResult =
  | {ok: true; line: string; fields: Record<string, string>}
  | {ok: false; error: 'timeout' | 'refused' | 'unreachable' | 'reset' | 'error'; message: string}

export interface RequestOptions {
  /** Per request (default 2000). */
  timeoutMs?: number
}

export interface EchoServerSpec {
  /** First words of every answer, e.g. "pod=198.19.200.11" or "client=198.18.1.2". */
  id: string
  listen: {protocol: LabProtocol; ip: string; port: number}[]
  lifetimeSeconds?: number
}

export interface EchoServer {
  readonly pid: number
  stop(): Promise<void>
}

/** A TCP connection or UDP flow kept open, asked on demand (see `Lab.holdConnection`). */
export interface HeldConnection {
  /** Sends one request on the held socket: its answer, or what ended the connection. */
  ask(): Promise<EchoResult>
  /** Ends the client process. */
  close(): Promise<void>
}

export interface HeldConnectionSpec {
  protocol: LabProtocol
  source: {ip: string; port: number}
  target: {ip: string; port: number}
  /** Per request (default 1000). */
  timeoutMs?: number
  /** The client exits by itself after this long (default 120). */
  lifetimeSeconds?: number
}

const NAME_PREFIX = 'snl-'
const ECHO_SERVER = fileURLToPath(new URL('echo-server.mjs', import.meta.url))
const ECHO_CLIENT = fileURLToPath(new URL('echo-client.mjs', import.meta.url))
const HELD_CONNECTION = fileURLToPath(new URL('held-connection.mjs', import.meta.url))
const root = new ExecRunner({timeoutSeconds: 20})
const liveLabs = new Set<Lab>()
let labCount = 0

/** Why the lab cannot run here (not root, a tool missing), or undefined when it can. */
export function labUnavailableReason(): string | undefined {
  return unmetNeeds('the namespace lab', {root: true, tools: ['ip', 'iptables', 'iptables-restore', 'conntrack', 'sysctl']})
}

/** In a mocha hook or test: fail under CI when the lab cannot run, skip (saying why) elsewhere. */
export function requireLab(context: Mocha.Context): void {
  requireOrSkip(context, labUnavailableReason())
}

/** Builds a lab; on any failure everything built so far is torn down before the error is thrown. */
export async function createLab(options: LabOptions = {}): Promise<Lab> {
  const kubeProxy = options.kubeProxy ?? true
  if (!kubeProxy && options.services?.length) throw new Error('a lab without kube-proxy translates no Service VIPs: leave out services')
  const lab = new Lab(`${NAME_PREFIX}${process.pid}-${++labCount}-`, options.echoLifetimeSeconds ?? 300, kubeProxy)
  liveLabs.add(lab)
  try {
    await lab.build(options.hostRpFilter ?? 1)
    for (const pod of options.pods ?? (kubeProxy ? LAB_DEFAULT_PODS : LAB_DIRECT_PODS)) await lab.addPod(pod)
    for (const service of kubeProxy ? options.services ?? LAB_DEFAULT_SERVICES : []) await lab.setService(service)
    return lab
  } catch (error) {
    await lab.destroy()
    throw error
  }
}

/**
 * In a describe: a lab built before its tests (requireLab: fail under CI, skip elsewhere, when it cannot
 * run) and destroyed after them; the returned function gives it to the tests.
 */
export function labForSuite(options: LabOptions = {}): () => Lab {
  let lab: Lab | undefined
  before(async function () {
    requireLab(this)
    lab = await createLab(options)
  })
  after(async () => {
    await lab?.destroy()
  })
  return () => {
    if (lab === undefined) throw new Error('the lab is built in the suite\'s before hook: read it in a test or a later hook')
    return lab
  }
}

/** Runs `body` against a fresh lab and always destroys the lab afterwards. */
export async function withLab<T>(options: LabOptions, body: (lab: Lab) => Promise<T>): Promise<T> {
  const lab = await createLab(options)
  try {
    return await body(lab)
  } finally {
    await lab.destroy()
  }
}

/** Removes every namespace whose name starts with `prefix` (default: all labs), killing what runs inside. */
export async function destroyAllLabs(prefix = NAME_PREFIX): Promise<string[]> {
  if (!prefix.startsWith(NAME_PREFIX)) throw new Error(`destroyAllLabs: prefix must start with ${NAME_PREFIX}`)
  const names = (await listNamespaces()).filter((name) => name.startsWith(prefix))
  for (const name of names) await deleteNamespace(name)
  return names
}

/** Names of all network namespaces (`ip netns list`). */
export async function listNamespaces(): Promise<string[]> {
  const {stdout} = await root.run('ip', ['netns', 'list'])
  return stdout
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter(Boolean)
}

async function deleteNamespace(name: string): Promise<void> {
  const {stdout} = await root.run('ip', ['netns', 'pids', name], {okExitCodes: [1]})
  for (const pid of stdout.split('\n').filter(Boolean).map(Number)) {
    try {
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
  const {stderr} = await root.run('ip', ['netns', 'del', name], {okExitCodes: [1]})
  if ((await listNamespaces()).includes(name)) throw new Error(`cannot delete namespace ${name}: ${stderr.trim()}`)
}

export class Lab {
  /** Runs commands inside the host namespace: point smartnat's sync at it. */
  readonly hostRunner: ExecRunner
  private readonly runners = new Map<LabNamespace, ExecRunner>()
  /** Echo servers and held connections: every process the lab started that outlives a call. */
  private readonly echoServers = new Set<ChildProcess>()
  private readonly podServers = new Map<string, EchoServer>()
  private readonly podList: LabPod[] = []
  private readonly serviceList: LabService[] = []
  private built = false

  constructor(
    /** Prefix of every namespace of this lab, e.g. "snl-4242-1-". */
    readonly prefix: string,
    private readonly echoLifetimeSeconds: number,
    /** Whether the node plays kube-proxy (DNATs VIPs to pods) or only routes to its pods. */
    readonly kubeProxy = true,
  ) {
    for (const ns of NAMESPACES) this.runners.set(ns, new ExecRunner({timeoutSeconds: 20, netns: this.ns(ns)}))
    this.hostRunner = this.runner('host')
  }

  /** The kernel name of one of the lab's namespaces. */
  ns(name: LabNamespace): string {
    return `${this.prefix}${name}`
  }

  /** An ExecRunner bound to one of the lab's namespaces. */
  runner(name: LabNamespace): ExecRunner {
    return this.runners.get(name)!
  }

  /** Runs a command inside one of the lab's namespaces. */
  exec(name: LabNamespace, command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    return this.runner(name).run(command, args, options)
  }

  /** Builds namespaces, links, addresses, routes and sysctls (called by createLab). */
  async build(hostRpFilter: 0 | 1 | 2): Promise<void> {
    if (this.built) throw new Error(`lab ${this.prefix} is already built`)
    this.built = true
    const P = LAB_PLAN
    for (const name of NAMESPACES) await root.run('ip', ['netns', 'add', this.ns(name)])
    for (const name of NAMESPACES) {
      await this.sysctl(name, {'net.ipv4.conf.all.rp_filter': '0', 'net.ipv4.conf.default.rp_filter': '0', 'net.ipv4.icmp_ratelimit': '0'})
    }

    await this.ip('host', [
      `link add eth1 type veth peer name up0 netns ${this.ns('rtr1')}`,
      `link add eth2 type veth peer name up0 netns ${this.ns('rtr2')}`,
      `link add cluster0 type veth peer name host0 netns ${this.ns('node')}`,
    ])
    await this.ip('client1', [`link add eth0 type veth peer name down0 netns ${this.ns('rtr1')}`])
    await this.ip('client2', [`link add eth0 type veth peer name down0 netns ${this.ns('rtr2')}`])

    await this.ip('client1', [
      ...P.client1.addresses.map((a) => `addr add ${a}/${P.client1.prefixLength} dev eth0`),
      'link set lo up',
      'link set eth0 up',
      `route add default via ${P.client1.gateway}`,
    ])
    await this.ip('client2', [
      ...P.client2.addresses.map((a) => `addr add ${a}/${P.client2.prefixLength} dev eth0`),
      'link set lo up',
      'link set eth0 up',
      `route add default via ${P.client2.gateway}`,
    ])
    for (const rtr of ['rtr1', 'rtr2'] as const) {
      await this.ip(rtr, [
        `addr add ${P[rtr].down}/24 dev down0`,
        `addr add ${P[rtr].up}/24 dev up0`,
        'link set lo up',
        'link set down0 up',
        'link set up0 up',
      ])
      await this.sysctl(rtr, {'net.ipv4.ip_forward': '1'})
    }
    await this.ip('host', [
      ...P.host.eth1.addresses.map((a) => `addr add ${a}/${P.host.eth1.prefixLength} dev eth1`),
      ...P.host.eth2.addresses.map((a) => `addr add ${a}/${P.host.eth2.prefixLength} dev eth2`),
      `addr add ${P.host.cluster0.address}/${P.host.cluster0.prefixLength} dev cluster0`,
      'link set lo up',
      'link set eth1 up',
      'link set eth2 up',
      'link set cluster0 up',
      `route add default via ${P.host.defaultGateway}`,
      ...(this.kubeProxy ? [`route add ${P.serviceCidr} via ${P.node.address}`] : []),
      `route add ${P.podCidr} via ${P.node.address}`,
    ])
    await this.sysctl('host', {
      'net.ipv4.ip_forward': '1',
      'net.ipv4.conf.eth1.rp_filter': String(hostRpFilter),
      'net.ipv4.conf.eth2.rp_filter': String(hostRpFilter),
    })
    await this.ip('node', [
      `addr add ${P.node.address}/${P.node.prefixLength} dev host0`,
      'link set lo up',
      'link set host0 up',
      `route add default via ${P.host.cluster0.address}`,
      // A pod address the node no longer holds is refused there instead of bouncing back to the host.
      `route add unreachable ${this.kubeProxy ? P.serviceCidr : P.podCidr}`,
    ])
    // Without forwarding the kernel drops packets to unreachable routes silently instead of answering.
    await this.sysctl('node', {'net.ipv4.ip_forward': '1'})
    if (this.kubeProxy) await this.renderServices()
  }

  /** Adds a pod address on the node and starts its echo server; it serves no Service until `setService` names it. */
  async addPod(pod: LabPod): Promise<void> {
    podAddress(pod.ip)
    if (this.podList.some((p) => p.ip === pod.ip)) throw new Error(`pod ${pod.ip} already exists`)
    await this.ip('node', [`addr add ${pod.ip}/32 dev lo`])
    const listen = [
      ...(pod.tcp ?? []).map((port) => ({protocol: 'tcp' as const, ip: pod.ip, port})),
      ...(pod.udp ?? []).map((port) => ({protocol: 'udp' as const, ip: pod.ip, port})),
    ]
    if (listen.length > 0) this.podServers.set(pod.ip, await this.startEcho('node', {id: `pod=${pod.ip}`, listen}))
    this.podList.push(pod)
  }

  /** Removes a pod the way an endpoint disappears: out of every Service, its conntrack entries dropped, then gone. */
  async removePod(ip: string): Promise<void> {
    const index = this.podList.findIndex((p) => p.ip === ip)
    if (index === -1) throw new Error(`pod ${ip} does not exist`)
    if (this.kubeProxy) {
      for (const service of this.serviceList) service.pods = service.pods.filter((p) => p !== ip)
      await this.renderServices()
      // kube-proxy drops every entry of a pod that left on the node, whoever made it.
      await deleteConntrackFlows(this.runner('node'), {replySrc: podAddress(ip)})
    }
    await this.podServers.get(ip)?.stop()
    this.podServers.delete(ip)
    await this.ip('node', [`addr del ${ip}/32 dev lo`])
    this.podList.splice(index, 1)
  }

  /** Creates or replaces the node's DNAT for one VIP:port/protocol. */
  async setService(service: LabService): Promise<void> {
    if (!this.kubeProxy) throw new Error(`lab ${this.prefix} has no kube-proxy: it translates no Service VIPs`)
    const index = this.serviceList.findIndex((s) => sameServicePort(s, service))
    const copy = {...service, pods: [...service.pods]}
    if (index === -1) this.serviceList.push(copy)
    else this.serviceList[index] = copy
    await this.renderServices()
  }

  /** Removes the node's DNAT for one VIP:port/protocol. */
  async removeService(vip: string, protocol: LabProtocol, port: number): Promise<void> {
    const index = this.serviceList.findIndex((s) => sameServicePort(s, {vip, protocol, port}))
    if (index === -1) throw new Error(`service ${vip} ${protocol}/${port} does not exist`)
    this.serviceList.splice(index, 1)
    await this.renderServices()
  }

  /** The Services the node currently translates. */
  services(): LabService[] {
    return this.serviceList.map((s) => ({...s, pods: [...s.pods]}))
  }

  /** The pods currently on the node. */
  pods(): LabPod[] {
    return this.podList.map((p) => ({...p}))
  }

  /** Starts an echo server inside a namespace; it stops at teardown or after its lifetime. */
  async startEcho(name: LabNamespace, spec: EchoServerSpec): Promise<EchoServer> {
    const args = ['--id', spec.id, '--lifetime', String(spec.lifetimeSeconds ?? this.echoLifetimeSeconds)]
    for (const l of spec.listen) args.push('--listen', `${l.protocol}:${l.ip}:${l.port}`)
    const child = spawn('ip', ['netns', 'exec', this.ns(name), process.execPath, ECHO_SERVER, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    this.echoServers.add(child)
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    void exited.then(() => this.echoServers.delete(child))
    const stop = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    }
    try {
      await waitForReady(child, `echo server ${spec.id} in ${name}`)
    } catch (error) {
      await stop()
      throw error
    }
    return {pid: child.pid!, stop}
  }

  /**
   * Opens one TCP connection (or UDP flow) from `source` in namespace `from` and keeps it, so a test
   * can ask on the same conntrack entry before and after a change; it ends at teardown or after its lifetime.
   */
  async holdConnection(from: LabNamespace, spec: HeldConnectionSpec): Promise<HeldConnection> {
    const {protocol, source, target} = spec
    const args = [protocol, source.ip, String(source.port), target.ip, String(target.port), String(spec.timeoutMs ?? 1000), String(spec.lifetimeSeconds ?? 120)]
    const child = spawn('ip', ['netns', 'exec', this.ns(from), process.execPath, HELD_CONNECTION, ...args], {stdio: ['pipe', 'pipe', 'pipe']})
    // An ask after the client died fails on its own; the pipe's error must not end the test process.
    child.stdin!.on('error', () => {})
    this.echoServers.add(child)
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    void exited.then(() => this.echoServers.delete(child))
    const close = async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    }
    const what = `held ${protocol} connection ${source.ip}:${source.port} -> ${target.ip}:${target.port} in ${from}`
    try {
      await waitForReady(child, what)
    } catch (error) {
      await close()
      throw error
    }
    const waiting: ((line: string | undefined) => void)[] = []
    let buffered = ''
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      for (let newline = buffered.indexOf('\n'); newline !== -1; newline = buffered.indexOf('\n')) {
        const line = buffered.slice(0, newline)
        buffered = buffered.slice(newline + 1)
        waiting.shift()?.(line)
      }
    })
    void exited.then(() => waiting.splice(0).forEach((next) => next(undefined)))
    const ask = async (): Promise<EchoResult> => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`${what}: the client has ended`)
      const line = await new Promise<string | undefined>((resolve) => {
        waiting.push(resolve)
        child.stdin!.write('ask\n')
      })
      if (line === undefined) throw new Error(`${what}: the client ended without answering`)
      return toEchoResult(line)
    }
    return {ask, close}
  }

  /** One TCP request ("ping\n" -> one answer line) from a namespace, optionally from a given source address. */
  async tcpRequest(from: LabNamespace, source: string | undefined, ip: string, port: number, options: RequestOptions = {}): Promise<EchoResult> {
    return (await this.requests('tcp', from, source, ip, port, 1, options))[0]!
  }

  /** One UDP datagram and its answer, from a namespace. */
  async udpRequest(from: LabNamespace, source: string | undefined, ip: string, port: number, options: RequestOptions = {}): Promise<EchoResult> {
    return (await this.requests('udp', from, source, ip, port, 1, options))[0]!
  }

  /** `count` sequential requests, each on a new socket (so a new connection for the NAT), in one client process. */
  async requests(
    protocol: LabProtocol,
    from: LabNamespace,
    source: string | undefined,
    ip: string,
    port: number,
    count: number,
    options: RequestOptions = {},
  ): Promise<EchoResult[]> {
    const timeoutMs = options.timeoutMs ?? 2000
    const args = [protocol, source ?? '-', ip, String(port), String(timeoutMs), String(count)]
    // The client bounds itself; the guard is for a client that cannot even start.
    const {code, lines, stderr} = await this.runNode(from, [ECHO_CLIENT, ...args], count * timeoutMs + 10_000)
    if (code !== 0 || lines.length !== count) {
      throw new Error(`echo client ${args.join(' ')} in ${from} exited with ${code}: ${stderr.trim()}`)
    }
    return lines.map(toEchoResult)
  }

  /** Node with `args` in namespace `from`, killed if it outlives `guardMs`: its exit code, non-empty stdout lines and stderr. */
  async runNode(from: LabNamespace, args: string[], guardMs: number): Promise<{code: number | null; lines: string[]; stderr: string}> {
    const child = spawn('ip', ['netns', 'exec', this.ns(from), process.execPath, ...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    const guard = setTimeout(() => child.kill('SIGKILL'), guardMs)
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve))
    clearTimeout(guard)
    return {code, lines: stdout.split('\n').filter(Boolean), stderr}
  }

  /** Kills everything the lab started and deletes its namespaces; safe to call more than once. */
  async destroy(): Promise<void> {
    await Promise.all([...this.echoServers].map((child) => {
      child.kill('SIGKILL')
      return new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(undefined)))
    }))
    const failures: unknown[] = []
    const existing = await listNamespaces()
    for (const name of NAMESPACES.map((n) => this.ns(n)).filter((n) => existing.includes(n))) {
      await deleteNamespace(name).catch((error: unknown) => failures.push(error))
    }
    if (failures.length > 0) throw new AggregateError(failures, `lab ${this.prefix}: teardown left namespaces behind`)
    liveLabs.delete(this)
  }

  /** Synchronous last-resort teardown, for process exit. */
  destroySync(): void {
    for (const child of this.echoServers) child.kill('SIGKILL')
    for (const name of NAMESPACES) spawnSync('ip', ['netns', 'del', this.ns(name)], {stdio: 'ignore'})
  }

  private async ip(name: LabNamespace, commands: string[]): Promise<void> {
    await root.run('ip', ['-n', this.ns(name), '-batch', '-'], {input: `${commands.join('\n')}\n`})
  }

  private async sysctl(name: LabNamespace, values: Record<string, string>): Promise<void> {
    await this.exec(name, 'sysctl', ['-q', '-w', ...Object.entries(values).map(([k, v]) => `${k}=${v}`)])
  }

  // The node's whole nat table is the lab's own, so it is rewritten in one iptables-restore.
  private async renderServices(): Promise<void> {
    const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]']
    const rules: string[] = []
    lines.push(':LAB-SERVICES - [0:0]')
    rules.push('-A PREROUTING -j LAB-SERVICES', '-A OUTPUT -j LAB-SERVICES')
    this.serviceList.forEach((service, i) => {
      if (service.pods.length === 0) return
      const chain = `LAB-SVC-${i}`
      lines.push(`:${chain} - [0:0]`)
      rules.push(`-A LAB-SERVICES -d ${service.vip}/32 -p ${service.protocol} -m ${service.protocol} --dport ${service.port} -j ${chain}`)
      service.pods.forEach((pod, k) => {
        const remaining = service.pods.length - k
        // Rule k takes one in `remaining` of the new connections that reach it: round-robin.
        const pick = remaining > 1 ? `-m statistic --mode nth --every ${remaining} --packet 0 ` : ''
        rules.push(`-A ${chain} -p ${service.protocol} ${pick}-j DNAT --to-destination ${pod}:${service.targetPort}`)
      })
    })
    await this.exec('node', 'iptables-restore', [], {input: [...lines, ...rules, 'COMMIT', ''].join('\n')})
  }
}

function podAddress(text: string): Ipv4 {
  const ip = parseIpv4(text)
  if (!ip || !cidrContains(LAB_PLAN.podCidr as Cidr, ip)) throw new Error(`pod address "${text}" must be an address in ${LAB_PLAN.podCidr}`)
  return ip
}

function sameServicePort(a: Pick<LabService, 'vip' | 'protocol' | 'port'>, b: Pick<LabService, 'vip' | 'protocol' | 'port'>): boolean {
  return a.vip === b.vip && a.protocol === b.protocol && a.port === b.port
}

function toEchoResult(line: string): EchoResult {
  const parsed = JSON.parse(line) as {ok: boolean; line?: string; error?: string; message?: string}
  if (!parsed.ok) return parsed as EchoResult
  const answer = parsed.line ?? ''
  const fields = Object.fromEntries(answer.split(' ').map((word) => word.split('=', 2) as [string, string]))
  return {ok: true, line: answer, fields}
}

function waitForReady(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let stderr = ''
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 10 s: ${stderr.trim()}`)), 10_000)
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.stdout!.on('data', (chunk: Buffer) => {
      if (chunk.toString().includes('ready')) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.once('exit', (code) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited with ${code}: ${stderr.trim()}`))
    })
  })
}

process.once('exit', () => {
  for (const lab of liveLabs) lab.destroySync()
})
