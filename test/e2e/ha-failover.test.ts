/**
 * An active-standby pair in the namespace lab, with the real keepalived and conntrackd configured from
 * deploy/ha/: smartnat programs the floating address on both edges, the active edge fails, and the
 * client's long-lived TCP connection and UDP flow carry on through the standby, while a loop of new
 * connections finds the new active edge. Prints the longest gaps it saw (docs/benchmarks.md).
 */
import {expect} from 'chai'
import {fileURLToPath} from 'node:url'
import type {BackendName} from '../../src/lib/backend/registry.js'
import {HA_PLAN, HaLab, haLabUnavailableReason, waitFor, type Edge} from '../support/ha-lab.js'
import {ManifestDir} from '../support/mappings.js'
import {requireOrSkip} from '../support/requirements.js'
import {smartnat, smartnatJson} from '../support/smartnat-cli.js'
import {startTrafficMonitor, type TrafficReport} from '../support/traffic-monitor.js'
import {freePort} from '../support/http.js'
import {WatchDaemon} from '../support/watch-daemon.js'

const STREAM = fileURLToPath(new URL('../support/ha-stream.mjs', import.meta.url))
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))
const APPLIED = '"msg":"sync applied changes"'
const UP_TO_DATE = '"msg":"sync: kernel already up to date"'
const count = (log: string, text: string) => log.split('\n').filter((line) => line.includes(text)).length

interface StreamResult {
  sent: number
  received: number
  longestGapMs: number
  gapEndedAt: number | null
  lastAnswerAt: number | null
  error: string | null
}

/** A numbered message every `intervalMs` on one connection (flow) from the client, each answer expected. */
async function startStream(lab: HaLab, protocol: 'tcp' | 'udp', port: number, intervalMs: number): Promise<{stop(): Promise<StreamResult>}> {
  const stream = lab.start('client', process.execPath, [STREAM, protocol, HA_PLAN.floatingExternal, String(port), String(intervalMs), '120'])
  await waitFor(() => stream.output().includes('ready') || stream.child.exitCode !== null, 10_000, `${protocol} stream`)
  if (!stream.output().includes('ready')) throw new Error(`${protocol} stream did not start: ${stream.output()}`)
  return {
    async stop() {
      stream.child.stdin!.end()
      await waitFor(() => stream.child.exitCode !== null, 10_000, `${protocol} stream to report`)
      const last = stream.output().trim().split('\n').at(-1)!
      return JSON.parse(last) as StreamResult
    },
  }
}

/** The longest run of failed new connections, from the first failed attempt's start to one interval after the last's. */
function longestOutageMs(report: TrafficReport, intervalMs: number): number {
  const times = report.failures.map((f) => f.at).sort((a, b) => a - b)
  let longest = 0
  let start = times[0]
  for (let i = 0; i < times.length; i++) {
    if (i > 0 && times[i]! - times[i - 1]! > 3 * intervalMs) start = times[i]
    longest = Math.max(longest, times[i]! - start! + intervalMs)
  }
  return longest
}

/**
 * Waits until `standby`'s conntrackd holds the TCP connection in its external cache, asking the
 * active edge for its table again every 2 s (`conntrackd -n`, what the notify script does on
 * `backup`) while it does not: a standby that came back during the active edge's own hand-over
 * (`-c`, `-f`, `-R`, `-B`) can miss it, which an operator checks before failing over by hand.
 */
async function standbyHoldsConnection(lab: HaLab, standby: Edge): Promise<void> {
  const config = lab.conntrackdConfig(standby)
  let askedAt = Date.now()
  await waitFor(async () => {
    const {stdout} = await lab.exec(standby, 'conntrackd', ['-C', config, '-e'], {okExitCodes: [1]})
    if (stdout.split('\n').some((line) => line.includes(`dst=${HA_PLAN.floatingExternal}`) && line.includes('dport=80') && line.includes('ESTABLISHED'))) return true
    if (Date.now() - askedAt >= 2000) {
      await lab.exec(standby, 'conntrackd', ['-C', config, '-n'], {okExitCodes: [1]})
      askedAt = Date.now()
    }
    return false
  }, 15_000, `edge ${standby}'s conntrackd holding the TCP connection`)
}

function haFlags(lab: HaLab, dir: ManifestDir, edge: Edge, backend: BackendName): string[] {
  return [
    '--from-file', dir.path,
    '--netns', lab.ns(edge),
    '--lock-file', dir.file(`${edge}.lock`),
    '--backend', backend,
    '--config', '/dev/null',
    '--interfaces', '^eth1$',
    '--floating-addresses', `eth1=${HA_PLAN.floatingExternal}/24`,
    '--cluster-address', HA_PLAN.floatingCluster,
  ]
}

describe('HA pair failover (namespace lab, root, keepalived + conntrackd)', function () {
  this.timeout(180_000)
  let lab: HaLab | undefined
  let dir: ManifestDir | undefined

  beforeEach(function () {
    requireOrSkip(this, haLabUnavailableReason())
  })

  const daemons: WatchDaemon[] = []
  afterEach(async () => {
    for (const daemon of daemons.splice(0)) await daemon.stop()
    await lab?.destroy()
    await dir?.remove()
    lab = undefined
    dir = undefined
  })

  /** Two programmed edges with conntrackd, a active and b standby, and the status of b saying it is ready; `watch` programs them when given. */
  async function pair(backend: BackendName, program: 'sync' | 'watch' = 'sync', standby: {primaryDelaySeconds?: number} = {}): Promise<HaLab> {
    lab = await HaLab.create()
    dir = await ManifestDir.create()
    await dir.write({
      services: [{name: 'web', clusterIP: HA_PLAN.vip, ports: [{protocol: 'tcp', port: 80, targetPort: 8080}, {protocol: 'udp', port: 53, targetPort: 5353}], pods: [HA_PLAN.pod]}],
      mappings: [{name: 'web', addresses: [HA_PLAN.floatingExternal], serviceName: 'web', ports: [{port: 80}, {port: 53, protocol: 'udp'}]}],
    })
    // Both edges are programmed before keepalived runs: the standby is as ready as the active edge.
    for (const edge of ['a', 'b'] as const) {
      if (program === 'watch') {
        const daemon = new WatchDaemon(['watch', ...haFlags(lab, dir, edge, backend), '--metrics-addr', `127.0.0.1:${await freePort()}`, '--resync', '10m', '--log-level', 'debug'], 170_000)
        daemons.push(daemon)
        await waitFor(() => daemon.tail(1000).includes(APPLIED), 30_000, `watch on edge ${edge} programming it`)
        continue
      }
      const synced = await smartnatJson<{configured: number}>(['sync', ...haFlags(lab, dir, edge, backend)])
      expect(synced.configured, `edge ${edge} programs the floating address it does not hold`).to.equal(1)
    }
    for (const edge of ['a', 'b'] as const) await lab.startConntrackd(edge)
    await lab.startKeepalived('a')
    await waitFor(() => lab!.holds('a', HA_PLAN.floatingExternal), 10_000, 'edge a taking the floating address')
    await lab.startKeepalived('b', standby)
    await sleep(1500)
    expect(await lab.holds('b', HA_PLAN.floatingExternal), 'b stays standby').to.equal(false)
    await expectStandbyReady(lab, backend, 'b')
    return lab
  }

  async function expectStandbyReady(lab: HaLab, backend: BackendName, edge: Edge): Promise<void> {
    const status = await smartnat(['status', ...haFlags(lab, dir!, edge, backend), '--conntrackd-config', lab.conntrackdConfig(edge), '--json'])
    expect(status.code, `standby status: ${status.stderr}${status.stdout}`).to.equal(0)
    const ha = (JSON.parse(status.stdout) as {ha: {floating: {role: string}[]; sync: {healthy: boolean}}}).ha
    expect(ha.floating.map((f) => f.role)).to.deep.equal(['standby'])
    expect(ha.sync.healthy).to.equal(true)
  }

  // `cutOff`: the failed edge can no longer forward, so the connection must be on b now. Where its
  // kernel lives on, it still forwards (by its conntrack entries) what reaches it until ARP caches follow.
  const failures: {name: string; cutOff: boolean; fail: (lab: HaLab) => Promise<void>}[] = [
    {name: 'keepalived stopped', cutOff: false, fail: (lab) => lab.keepalivedOf('a')!.stop('SIGTERM')},
    {name: 'external link down', cutOff: true, fail: async (lab) => void (await lab.exec('a', 'ip', ['link', 'set', 'eth1', 'down']))},
    {name: 'every process of the edge killed', cutOff: false, fail: (lab) => lab.killAll('a')},
    {
      name: 'the edge gone (every process killed, every link down)',
      cutOff: true,
      fail: async (lab) => {
        await lab.killAll('a')
        for (const iface of ['eth1', 'eth2', 'eth3']) await lab.exec('a', 'ip', ['link', 'set', iface, 'down'])
      },
    },
  ]

  for (const backend of ['iptables', 'nftables'] as const) {
    for (const {name, cutOff, fail} of failures) {
      it(`${backend}, ${name}: the TCP connection and the UDP flow carry on through the standby, new connections reach it`, async () => {
        const lab = await pair(backend)
        const tcp = await startStream(lab, 'tcp', 80, 20)
        const udp = await startStream(lab, 'udp', 53, 20)
        const monitor = await startTrafficMonitor(lab, 'client', [{protocol: 'tcp', ip: HA_PLAN.floatingExternal, port: 80}], {intervalMs: 50, timeoutMs: 1000, maxSeconds: 60, source: HA_PLAN.client})
        await sleep(1500)
        // conntrackd replicates a connection when its state changes, not at once: the failure comes
        // once b's external cache holds the TCP connection, as an operator's checks would see it.
        await waitFor(async () => {
          const {stdout} = await lab.exec('b', 'conntrackd', ['-C', lab.conntrackdConfig('b'), '-e'], {okExitCodes: [1]})
          return stdout.split('\n').some((line) => line.includes(`dst=${HA_PLAN.floatingExternal}`) && line.includes('dport=80') && line.includes('ESTABLISHED'))
        }, 5000, "edge b's conntrackd holding the TCP connection from a")

        const failedAt = Date.now()
        await fail(lab)
        await waitFor(() => lab.holds('b', HA_PLAN.floatingExternal), 5000, 'edge b taking the floating address')
        const takeoverMs = Date.now() - failedAt
        await sleep(2500)
        // The connection is b's now: its NAT entry, committed from a's, leads to the floating cluster-side address.
        const {stdout: entries} = await lab.exec('b', 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', HA_PLAN.floatingExternal, '--dport', '80', '--state', 'ESTABLISHED'], {okExitCodes: [1]})
        const entryOnStandby = entries.includes(`dst=${HA_PLAN.floatingCluster}`)
        if (cutOff) expect(entries, 'b tracks the long-lived connection').to.contain(`dst=${HA_PLAN.floatingCluster}`)
        // b committed a's connections (conntrackd -c) when it became the active edge.
        expect(await lab.transitions('b'), 'notify script calls on b').to.deep.equal(['backup', 'primary'])

        const [tcpResult, udpResult, probes] = [await tcp.stop(), await udp.stop(), await monitor.stop()]
        const figures = {backend, failure: name, takeoverMs, entryOnStandby, tcp: tcpResult, udp: udpResult, newConnections: {...probes.targets, longestOutageMs: longestOutageMs(probes, 50)}}
        console.log(`      HA figures: ${JSON.stringify(figures)}`)

        expect(tcpResult.error, 'the TCP connection is not reset').to.equal(null)
        expect(tcpResult.received, 'every TCP message is answered').to.equal(tcpResult.sent)
        expect(udpResult.received, 'the UDP flow resumes: almost every datagram answered').to.be.at.least(udpResult.sent - 100)
        expect(udpResult.lastAnswerAt ?? 0, 'the UDP flow still answered 2 s after the failover').to.be.greaterThan(failedAt + 2000)
        const lastFailure = Math.max(0, ...probes.failures.map((f) => f.at))
        expect(lastFailure, 'new connections succeed on the new active edge').to.be.lessThan(failedAt + 2000)
      })
    }
  }

  for (const backend of ['iptables', 'nftables'] as const) {
    it(`${backend}: a pod's packet reaching the new active edge before the hand-over committed its connection is not answered with a reset`, async () => {
      // b's hand-over (conntrackd -c) runs 1 s after keepalived gave it the addresses, and the client
      // keeps sending to a until then (a gateway that missed the gratuitous ARP; a's kernel forwards
      // on, its processes killed): the pod's answers reach b, which does not track the connection yet.
      const lab = await pair(backend, 'sync', {primaryDelaySeconds: 1})
      const tcp = await startStream(lab, 'tcp', 80, 20)
      await standbyHoldsConnection(lab, 'b')
      const toEdge = async (edge: Edge) => {
        const mac = await lab.mac(edge, 'eth1')
        await lab.exec('client', 'ip', ['neigh', 'replace', HA_PLAN.floatingExternal, 'lladdr', mac, 'dev', 'eth0', 'nud', 'permanent'])
      }
      await toEdge('a')
      await lab.killAll('a')
      await waitFor(() => lab.holds('b', HA_PLAN.floatingExternal), 5000, 'edge b taking the floating address')
      await waitFor(
        async () => {
          const {stdout} = await lab.exec('b', 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', HA_PLAN.floatingExternal, '--dport', '80', '--state', 'ESTABLISHED'], {okExitCodes: [1]})
          return stdout.includes(`dst=${HA_PLAN.floatingCluster}`)
        },
        10_000,
        "edge b's kernel tracking the connection (the hand-over's commit)",
      )
      await toEdge('b')
      await sleep(1500)
      const result = await tcp.stop()
      console.log(`      HA figures: ${JSON.stringify({backend, failure: 'hand-over 1 s late, client on the old edge until then', tcp: result})}`)
      expect(result.error, 'the TCP connection is not reset').to.equal(null)
      expect(result.received, 'every TCP message is answered').to.equal(result.sent)
    })
  }

  it('watch on both edges: the address moving to the standby changes nothing either writes, and the connection carries on', async () => {
    const lab = await pair('iptables', 'watch')
    const tcp = await startStream(lab, 'tcp', 80, 20)
    await sleep(1000)
    const applied = daemons.map((daemon) => count(daemon.tail(10_000), APPLIED))
    const upToDate = daemons.map((daemon) => count(daemon.tail(10_000), UP_TO_DATE))
    await lab.keepalivedOf('a')!.stop('SIGTERM')
    await waitFor(() => lab.holds('b', HA_PLAN.floatingExternal), 5000, 'edge b taking the floating address')
    // Each daemon sees its host's addresses change (ip monitor) and makes a pass that finds nothing to do.
    for (const [i, daemon] of daemons.entries()) {
      await waitFor(() => count(daemon.tail(10_000), UP_TO_DATE) > upToDate[i]!, 10_000, `watch on edge ${'ab'[i]} passing after the move`)
    }
    expect(daemons.map((daemon) => count(daemon.tail(10_000), APPLIED)), 'kernel writes after the move').to.deep.equal(applied)
    const result = await tcp.stop()
    expect(result.error).to.equal(null)
    expect(result.received).to.equal(result.sent)
  })

  for (const backend of ['iptables', 'nftables'] as const) {
    it(`${backend}: 10 failovers in a row, back and forth, keep the connection and leave no rule, entry or address behind`, async () => {
      const lab = await pair(backend)
      const flows = async (edge: Edge) => {
        const {stdout} = await lab.exec(edge, 'conntrack', ['-L', '--orig-dst', HA_PLAN.floatingExternal], {okExitCodes: [1]})
        return stdout.split('\n').filter((line) => line.includes('dport=')).length
      }
      const tcp = await startStream(lab, 'tcp', 80, 20)
      const udp = await startStream(lab, 'udp', 53, 20)
      await sleep(1000)
      const edges = ['a', 'b'] as const
      for (let round = 0; round < 10; round++) {
        const [active, standby] = round % 2 === 0 ? edges : ([edges[1], edges[0]] as const)
        await standbyHoldsConnection(lab, standby)
        await lab.keepalivedOf(active)!.stop('SIGTERM')
        await waitFor(() => lab.holds(standby, HA_PLAN.floatingExternal), 5000, `round ${round + 1}: ${standby} taking the floating address`)
        // The old active edge comes back as the standby (nopreempt) and fetches the new active edge's table.
        await lab.startKeepalived(active)
        await sleep(1500)
      }
      await sleep(1000)
      const [tcpResult, udpResult] = [await tcp.stop(), await udp.stop()]
      console.log(`      HA figures: ${JSON.stringify({backend, failure: '10 failovers, back and forth', tcp: tcpResult, udp: udpResult})}`)

      expect(tcpResult.error, 'the TCP connection is not reset').to.equal(null)
      expect(tcpResult.received, 'every TCP message is answered').to.equal(tcpResult.sent)
      expect(udpResult.received, 'the UDP flow lost at most a few datagrams per failover').to.be.at.least(udpResult.sent - 200)
      // After 10 failovers a is active again; each address is on one edge only.
      for (const address of [HA_PLAN.floatingExternal, HA_PLAN.floatingCluster]) {
        expect([await lab.holds('a', address), await lab.holds('b', address)], address).to.deep.equal([true, false])
      }
      // The two flows, once on each edge (the standby keeps its copy until PurgeTimeout), and nothing more.
      for (const edge of edges) expect(await flows(edge), `connection entries in ${edge}`).to.be.at.most(2)
      await expectStandbyReady(lab, backend, 'b')
      const active = await smartnat(['status', ...haFlags(lab, dir!, 'a', backend), '--conntrackd-config', lab.conntrackdConfig('a')])
      expect(active.code, `active status, no drift and the sync healthy: ${active.stdout}`).to.equal(0)
    })
  }
})

