/**
 * What `status` reads of the host, counted and ordered through fake runners: every read that needs
 * nothing from another starts before any of them answers, the sysctls take one process, and a
 * sysctl that cannot be read leaves the others readable.
 */
import {expect} from 'chai'
import {CommandError, type RunResult, type Runner} from '../../src/lib/host/runner.js'
import {inspectHost} from '../../src/lib/inspect/inspection.js'
import type {HostInfo} from '../../src/lib/plan/model.js'
import {gatherHostStatus, probeHost, type HostProbes} from '../../src/lib/status/host.js'
import {inertBackend} from '../support/inert-backend.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {UNINSPECTED} from '../support/uninspected.js'
import {SETTINGS, snapshot} from './explain-fixture.js'

/** A runner whose every call waits until the test releases it: what started, and in which order, before anything answered. */
class GatedRunner implements Runner {
  readonly started: string[] = []
  private readonly waiting: (() => void)[] = []

  constructor(private readonly answer: (command: string) => Partial<RunResult> = () => ({})) {}

  async run(command: string, args: string[]): Promise<RunResult> {
    const line = [command, ...args].join(' ')
    this.started.push(line)
    await new Promise<void>((resolve) => this.waiting.push(resolve))
    return {stdout: '', stderr: '', exitCode: 0, ...this.answer(line)}
  }

  /** Lets every call made so far answer. */
  release(): void {
    for (const resolve of this.waiting.splice(0)) resolve()
  }
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve))

const VERSIONS: Record<string, string> = {
  'iptables --version': 'iptables v1.8.9 (nf_tables)',
  'ipset --version': 'ipset v7.17, protocol version: 7',
  'ip -V': 'ip utility, iproute2-6.1.0',
  'conntrack --version': 'conntrack v1.4.7 (conntrack-tools)',
}

const HOST: HostInfo = {
  interfaces: [
    {name: 'eth1', addresses: [{address: '198.18.0.10', prefixLength: 24}]},
    {name: 'eth2', addresses: [{address: '198.18.2.10', prefixLength: 24}]},
  ],
} as HostInfo

const EMPTY_MODEL = {interfaces: []} as unknown as Parameters<typeof gatherHostStatus>[1]['model']

const TOOLS = ['iptables', 'ipset', 'ip', 'conntrack'] as const

const PRESENT = [
  {name: 'iptables', present: true, version: 'iptables v1.8.9 (nf_tables)', install: null},
  {name: 'ipset', present: true, version: 'ipset v7.17, protocol version: 7', install: null},
  {name: 'ip', present: true, version: 'ip utility, iproute2-6.1.0', install: null},
  {name: 'conntrack', present: true, version: 'conntrack v1.4.7 (conntrack-tools)', install: null},
]

describe('status: what it reads of the host', () => {
  it('asks for every tool’s version and the global sysctls at once, before any answers (a batching runner makes them one shell)', async () => {
    const runner = new GatedRunner((line) => (line.startsWith('sysctl ') ? {stdout: '1\n2\n'} : {stdout: `${VERSIONS[line]}\n`}))
    const probing = probeHost(runner, [...TOOLS])
    await settle()
    expect(runner.started).to.have.members([...Object.keys(VERSIONS), 'sysctl -n net.ipv4.ip_forward net/ipv4/conf/all/rp_filter'])
    runner.release()
    const probes = await probing
    expect(probes).to.deep.equal({tools: PRESENT, iptablesFlavour: 'nf_tables', ipForward: '1', rpFilterAll: 2})
  })

  it('tells a missing tool (how to install it), a failing one (no version) and an unreadable sysctl', async () => {
    const runner = new RecordingRunner((call) => {
      const line = [call.command, ...call.args].join(' ')
      if (line === 'ipset --version') return {exitCode: 1, stderr: 'ipset v7.17: Kernel error received: Operation not permitted'}
      if (call.command === 'conntrack') return new CommandError('conntrack', call.args, undefined, '', {cause: Object.assign(new Error('spawn conntrack ENOENT'), {code: 'ENOENT'})})
      if (line === 'sysctl -n net.ipv4.ip_forward') return {stdout: '1\n'}
      if (call.command === 'sysctl') return {exitCode: 255, stderr: 'sysctl: cannot stat /proc/sys/net/ipv4/conf/all/rp_filter'}
      return {stdout: `${VERSIONS[line]}\n`}
    })
    const {tools, ipForward, rpFilterAll} = await probeHost(runner, [...TOOLS])
    expect([ipForward, rpFilterAll]).to.deep.equal(['1', null])
    expect(tools).to.deep.equal([
      PRESENT[0],
      {name: 'ipset', present: true, version: null, install: null},
      PRESENT[2],
      {name: 'conntrack', present: false, version: null, install: 'apt-get install conntrack'},
    ])
  })

  it('reads every interface’s rp_filter with one process; when one cannot be read, the others still are', async () => {
    const probes: HostProbes = {tools: [], iptablesFlavour: null, ipForward: '1', rpFilterAll: 0}
    const options = {probes, forwardDrops: [], lockPath: '/nonexistent/smartnat.lock', host: HOST, model: EMPTY_MODEL, interfaceFaults: []}
    const readable = new RecordingRunner(() => ({stdout: '1\n2\n'}))
    const status = await gatherHostStatus(readable, options)
    expect(readable.calls.map((c) => [c.command, ...c.args].join(' '))).to.deep.equal(['sysctl -n net/ipv4/conf/eth1/rp_filter net/ipv4/conf/eth2/rp_filter'])
    expect(status.interfaces.map((i) => i.rpFilter)).to.deep.equal([1, 2])
    expect(status.problems).to.deep.equal(['rp_filter is strict on eth1: replies routed by its own table may be dropped; `smartnat sync` makes it loose'])

    // sysctl stops at a key it cannot read: then each is read alone, and only that one is unknown.
    const eth1Gone = new RecordingRunner((call) => (call.args.includes('net/ipv4/conf/eth1/rp_filter') ? {exitCode: 255, stderr: 'sysctl: cannot stat eth1'} : {stdout: '2\n'}))
    const partial = await gatherHostStatus(eth1Gone, options)
    expect(eth1Gone.calls).to.have.length(3)
    expect(partial.interfaces.map((i) => i.rpFilter)).to.deep.equal([null, 2])
  })

  it('reads the kernel while it reads the host’s addresses', async () => {
    const reads: string[] = []
    const backend = inertBackend({
      read: async () => {
        reads.push('kernel')
        return 'state'
      },
      inspect: {...UNINSPECTED, parts: () => [], inSync: () => true},
    })
    const runner = new GatedRunner(() => ({stdout: '[]'}))
    const inspecting = inspectHost({runner, backend, loadSnapshot: async () => snapshot()}, SETTINGS)
    await settle()
    expect(runner.started).to.deep.equal(['ip -j -4 addr show'])
    expect(reads).to.deep.equal(['kernel'])
    runner.release()
    expect((await inspecting).kernel).to.include({readable: true, installed: false})
  })
})
