/**
 * A namespace lab for an active-standby pair of smartnat hosts, with the real keepalived and
 * conntrackd configured from deploy/ha/. Root only. Namespaces are named `snl-<pid>-ha<n>-<role>`,
 * so `destroyAllLabs()` finds them too; `destroy()` kills every process the lab started and every
 * process left in its namespaces, then deletes them.
 *
 *   client 198.18.0.100 ─┐ external segment (bridge in `seg`)
 *        a eth1 198.18.0.2 ─┤                      floating 198.18.0.10/24 on the active edge's eth1
 *        b eth1 198.18.0.3 ─┘
 *        a eth3 198.18.3.1 ── b eth3 198.18.3.2    sync link (conntrackd FTFW)
 *        a eth2 198.18.2.2 ─┐ cluster segment (bridge in `seg`)
 *        b eth2 198.18.2.3 ─┤                      floating 198.18.2.100/24 on the active edge's eth2
 *     node eth0 198.18.2.50 ─┘                     VIP 198.19.100.10 tcp/80 udp/53 -> pod 198.19.200.11 tcp/8080 udp/5353
 */
import {spawn, type ChildProcess} from 'node:child_process'
import {chmod, copyFile, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {ExecRunner, type RunOptions, type RunResult} from '../../src/lib/host/runner.js'
import {destroyAllLabs} from './lab.js'
import {unmetNeeds} from './requirements.js'

export type HaNamespace = 'seg' | 'client' | 'a' | 'b' | 'node'
export type Edge = 'a' | 'b'

const NAMESPACES: HaNamespace[] = ['seg', 'client', 'a', 'b', 'node']

export const HA_PLAN = {
  client: '198.18.0.100',
  edges: {
    a: {external: '198.18.0.2', cluster: '198.18.2.2', sync: '198.18.3.1', peerExternal: '198.18.0.3', peerSync: '198.18.3.2', priority: 150},
    b: {external: '198.18.0.3', cluster: '198.18.2.3', sync: '198.18.3.2', peerExternal: '198.18.0.2', peerSync: '198.18.3.1', priority: 100},
  },
  floatingExternal: '198.18.0.10',
  floatingCluster: '198.18.2.100',
  node: '198.18.2.50',
  vip: '198.19.100.10',
  pod: '198.19.200.11',
} as const

const DEPLOY = fileURLToPath(new URL('../../deploy/ha/', import.meta.url))
const ECHO_SERVER = fileURLToPath(new URL('echo-server.mjs', import.meta.url))
const root = new ExecRunner({timeoutSeconds: 20})
let labCount = 0

/** Why the HA lab cannot run here, or undefined when it can. */
export function haLabUnavailableReason(): string | undefined {
  return unmetNeeds('the HA lab', {root: true, tools: ['ip', 'iptables', 'nft', 'conntrack', 'keepalived', 'conntrackd', 'sysctl']})
}

/** A process the lab started in one of its namespaces; it ends at the latest with the lab. */
export interface LabProcess {
  readonly child: ChildProcess
  output(): string
  /** Sends `signal` and waits for the exit. */
  stop(signal?: NodeJS.Signals): Promise<void>
}

export class HaLab {
  private readonly processes = new Set<ChildProcess>()
  private readonly runners = new Map<HaNamespace, ExecRunner>()
  private keepalived = new Map<Edge, LabProcess>()

  private constructor(
    readonly prefix: string,
    /** Configuration files, pid files and sockets of this lab's daemons. */
    readonly dir: string,
  ) {
    for (const ns of NAMESPACES) this.runners.set(ns, new ExecRunner({timeoutSeconds: 20, netns: this.ns(ns)}))
  }

  /** Builds the lab; on any failure what was built is torn down before the error is thrown. */
  static async create(): Promise<HaLab> {
    // Under /run, not /tmp: keepalived refuses notify scripts in a directory others may write to.
    const lab = new HaLab(`snl-${process.pid}-ha${++labCount}-`, await mkdtemp('/run/smartnat-ha-'))
    try {
      await lab.build()
      return lab
    } catch (error) {
      await lab.destroy()
      throw error
    }
  }

  ns(name: HaNamespace): string {
    return `${this.prefix}${name}`
  }

  exec(name: HaNamespace, command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    return this.runners.get(name)!.run(command, args, options)
  }

  /** conntrackd's configuration file of one edge (`smartnat status --conntrackd-config`). */
  conntrackdConfig(edge: Edge): string {
    return join(this.dir, `conntrackd-${edge}.conf`)
  }

  private async ip(name: HaNamespace, commands: string[]): Promise<void> {
    await root.run('ip', ['-n', this.ns(name), '-batch', '-'], {input: `${commands.join('\n')}\n`})
  }

  private async build(): Promise<void> {
    const P = HA_PLAN
    for (const name of NAMESPACES) await root.run('ip', ['netns', 'add', this.ns(name)])
    for (const name of NAMESPACES) {
      await this.exec(name, 'sysctl', ['-q', '-w', 'net.ipv4.conf.all.rp_filter=0', 'net.ipv4.conf.default.rp_filter=0'])
    }
    await this.ip('seg', ['link add ext type bridge', 'link add cl type bridge', 'link set lo up', 'link set ext up', 'link set cl up'])
    const plug = async (name: HaNamespace, iface: string, bridge: 'ext' | 'cl', port: string) => {
      await this.ip(name, [`link add ${iface} type veth peer name ${port} netns ${this.ns('seg')}`])
      await this.ip('seg', [`link set ${port} master ${bridge}`, `link set ${port} up`])
    }
    await plug('client', 'eth0', 'ext', 'c0')
    await plug('a', 'eth1', 'ext', 'a1')
    await plug('b', 'eth1', 'ext', 'b1')
    await plug('a', 'eth2', 'cl', 'a2')
    await plug('b', 'eth2', 'cl', 'b2')
    await plug('node', 'eth0', 'cl', 'n0')
    await this.ip('a', [`link add eth3 type veth peer name eth3 netns ${this.ns('b')}`])

    await this.ip('client', [`addr add ${P.client}/24 dev eth0`, 'link set lo up', 'link set eth0 up'])
    for (const edge of ['a', 'b'] as const) {
      const e = P.edges[edge]
      await this.ip(edge, [
        `addr add ${e.external}/24 dev eth1`,
        `addr add ${e.cluster}/24 dev eth2`,
        `addr add ${e.sync}/30 dev eth3`,
        'link set lo up',
        'link set eth1 up',
        'link set eth2 up',
        'link set eth3 up',
        `route add 198.19.100.0/24 via ${P.node}`,
      ])
      await this.exec(edge, 'sysctl', ['-q', '-w', 'net.ipv4.ip_forward=1'])
    }
    await this.ip('node', [`addr add ${P.node}/24 dev eth0`, `addr add ${P.pod}/32 dev lo`, 'link set lo up', 'link set eth0 up'])
    // The node plays kube-proxy for one Service: VIP:port -> pod:targetPort.
    const dnat = (protocol: string, port: number, target: number) =>
      `-A PREROUTING -d ${P.vip}/32 -p ${protocol} -m ${protocol} --dport ${port} -j DNAT --to-destination ${P.pod}:${target}`
    await this.exec('node', 'iptables-restore', [], {input: ['*nat', dnat('tcp', 80, 8080), dnat('udp', 53, 5353), 'COMMIT', ''].join('\n')})
    // Copied once: keepalived may be running it when an edge's keepalived (re)starts.
    await copyFile(join(DEPLOY, 'smartnat-ha-notify'), join(this.dir, 'smartnat-ha-notify'))
    await chmod(join(this.dir, 'smartnat-ha-notify'), 0o755)
    const echo = await this.start('node', process.execPath, [ECHO_SERVER, '--id', `pod=${P.pod}`, '--lifetime', '600', '--listen', `tcp:${P.pod}:8080`, '--listen', `udp:${P.pod}:5353`])
    await waitFor(() => echo.output().includes('ready'), 10_000, 'the pod echo server')
  }

  /** Starts `command` inside namespace `name`; its output is kept, and it is killed at teardown at the latest. */
  start(name: HaNamespace, command: string, args: string[], env: Record<string, string> = {}): LabProcess {
    const child = spawn('ip', ['netns', 'exec', this.ns(name), command, ...args], {stdio: ['pipe', 'pipe', 'pipe'], env: {...process.env, ...env}})
    child.stdin!.on('error', () => {})
    this.processes.add(child)
    let output = ''
    child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()))
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()))
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    void exited.then(() => this.processes.delete(child))
    return {
      child,
      output: () => output,
      async stop(signal: NodeJS.Signals = 'SIGTERM') {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal)
        await exited
      },
    }
  }

  /** Renders deploy/ha/conntrackd.conf for one edge, with its socket, lock and log in the lab's directory, and starts conntrackd. */
  async startConntrackd(edge: Edge): Promise<LabProcess> {
    const e = HA_PLAN.edges[edge]
    const values = {OWN_SYNC_ADDRESS: e.sync, PEER_SYNC_ADDRESS: e.peerSync, SYNC_INTERFACE: 'eth3', OWN_EXTERNAL_ADDRESS: e.external, OWN_CLUSTER_ADDRESS: e.cluster}
    const text = render(await readFile(join(DEPLOY, 'conntrackd.conf'), 'utf8'), values)
      .replace('LockFile /var/lock/conntrack.lock', `LockFile ${join(this.dir, `conntrackd-${edge}.lock`)}`)
      .replace('Path /var/run/conntrackd.ctl', `Path ${join(this.dir, `conntrackd-${edge}.ctl`)}`)
      .replace('Syslog on', 'Syslog off')
    await writeFile(this.conntrackdConfig(edge), text)
    const daemon = this.start(edge, 'conntrackd', ['-C', this.conntrackdConfig(edge)])
    await waitFor(async () => (await this.exec(edge, 'conntrackd', ['-C', this.conntrackdConfig(edge), '-s'], {okExitCodes: [1]})).exitCode === 0, 10_000, `conntrackd in ${edge}`)
    return daemon
  }

  /**
   * Renders deploy/ha/keepalived.conf for one edge (the notify script copied beside it) and starts keepalived in the foreground.
   * `primaryDelaySeconds` holds the hand-over on becoming active back by that long, as on a host too busy to run the script at once.
   */
  async startKeepalived(edge: Edge, options: {primaryDelaySeconds?: number} = {}): Promise<LabProcess> {
    const e = HA_PLAN.edges[edge]
    const notify = join(this.dir, `notify-${edge}`)
    const script = join(this.dir, 'smartnat-ha-notify')
    // The wrapper records each transition keepalived announces, then hands over as deployed.
    const transitions = join(this.dir, `transitions-${edge}`)
    const delay = options.primaryDelaySeconds === undefined ? '' : `[ "$1" = primary ] && sleep ${options.primaryDelaySeconds}\n`
    await writeFile(notify, `#!/bin/sh\necho "$1" >> ${transitions}\n${delay}CONNTRACKD_CONFIG=${this.conntrackdConfig(edge)} exec ${script} "$@"\n`, {mode: 0o755})
    const values = {
      EXTERNAL_INTERFACE: 'eth1',
      OWN_EXTERNAL_ADDRESS: e.external,
      PEER_EXTERNAL_ADDRESS: e.peerExternal,
      CLUSTER_INTERFACE: 'eth2',
      FLOATING_EXTERNAL_ADDRESS: `${HA_PLAN.floatingExternal}/24`,
      FLOATING_CLUSTER_ADDRESS: `${HA_PLAN.floatingCluster}/24`,
      VIRTUAL_ROUTER_ID: '51',
      PRIORITY: String(e.priority),
    }
    const config = join(this.dir, `keepalived-${edge}.conf`)
    await writeFile(config, render(await readFile(join(DEPLOY, 'keepalived.conf'), 'utf8'), values).replaceAll('/usr/local/sbin/smartnat-ha-notify', notify))
    const pid = (what: string) => join(this.dir, `keepalived-${edge}${what}.pid`)
    const daemon = this.start(edge, 'keepalived', ['--dont-fork', '--log-console', '--log-detail', '--no-syslog', '--vrrp', '-f', config, '-p', pid(''), '-r', pid('-vrrp'), '-c', pid('-checkers')])
    this.keepalived.set(edge, daemon)
    return daemon
  }

  /** SIGKILLs every process in an edge's namespace, as if the host died (the addresses keepalived added stay). */
  async killAll(edge: Edge): Promise<void> {
    const {stdout} = await root.run('ip', ['netns', 'pids', this.ns(edge)], {okExitCodes: [1]})
    for (const pid of stdout.split('\n').filter(Boolean).map(Number)) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
  }

  /** The states keepalived's notify script was called with on one edge, in order. */
  async transitions(edge: Edge): Promise<string[]> {
    const text = await readFile(join(this.dir, `transitions-${edge}`), 'utf8').catch(() => '')
    return text.split('\n').filter(Boolean)
  }

  /** keepalived of one edge, while it runs. */
  keepalivedOf(edge: Edge): LabProcess | undefined {
    return this.keepalived.get(edge)
  }

  /** The MAC address of an edge's interface. */
  async mac(edge: Edge, iface: string): Promise<string> {
    // `ip netns exec` mounts the namespace's own /sys.
    return (await this.exec(edge, 'cat', [`/sys/class/net/${iface}/address`])).stdout.trim()
  }

  /** Whether `address` is assigned in `edge` now. */
  async holds(edge: Edge, address: string): Promise<boolean> {
    const {stdout} = await this.exec(edge, 'ip', ['-4', '-o', 'addr', 'show'])
    return stdout.split('\n').some((line) => line.includes(` ${address}/`))
  }

  /** Kills everything the lab started and every process left in its namespaces, deletes them and the lab's directory. */
  async destroy(): Promise<void> {
    await Promise.all(
      [...this.processes].map((child) => {
        child.kill('SIGKILL')
        return new Promise((resolve) => (child.exitCode === null && child.signalCode === null ? child.once('exit', resolve) : resolve(undefined)))
      }),
    )
    await destroyAllLabs(this.prefix)
    await rm(this.dir, {recursive: true, force: true})
  }
}

/** `${NAME}` replaced by its value, as envsubst renders deploy/ha's templates; a name without a value is an error. */
export function render(template: string, values: Record<string, string>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (_, name: string) => {
    const value = values[name]
    if (value === undefined) throw new Error(`template value ${name} is not given`)
    return value
  })
}

/** Polls `check` every 20 ms until it holds; throws naming `what` after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not ready within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}
