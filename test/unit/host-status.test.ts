/**
 * What `status` reads of the host, counted and ordered through fake runners: every read that needs
 * nothing from another starts before any of them answers, the sysctls take one process, and a
 * sysctl that cannot be read leaves the others readable.
 */
import {expect} from 'chai'
import type {RunResult, Runner} from '../../src/lib/host/runner.js'
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

/** What `sh -c` prints for the versions and the two global sysctls: each command's output between its markers, and its exit status (0 unless given). */
function shellOutput(exits: Record<string, number> = {}): Partial<RunResult> {
  const answers: Record<string, string> = {...VERSIONS, 'sysctl -n net.ipv4.ip_forward': '1', 'sysctl -n net/ipv4/conf/all/rp_filter': '2'}
  const commands = Object.keys(answers)
  const stdout = commands.map((command, i) => {
    const exit = exits[command] ?? 0
    return `\n@@smartnat-command ${i}\n${exit === 0 ? `${answers[command]}\n` : ''}\n@@smartnat-command ${i} exit ${exit}\n`
  })
  const stderr = commands.map((command, i) => `\n@@smartnat-command ${i}\n${exits[command] === 127 ? `sh: 1: ${command.split(' ')[0]}: not found\n` : ''}`)
  return {stdout: stdout.join(''), stderr: stderr.join('')}
}

const PRESENT = [
  {name: 'iptables', present: true, version: 'iptables v1.8.9 (nf_tables)', install: null},
  {name: 'ipset', present: true, version: 'ipset v7.17, protocol version: 7', install: null},
  {name: 'ip', present: true, version: 'ip utility, iproute2-6.1.0', install: null},
  {name: 'conntrack', present: true, version: 'conntrack v1.4.7 (conntrack-tools)', install: null},
]

describe('status: what it reads of the host', () => {
  it('reads every tool’s version and the global sysctls with one shell', async () => {
    const runner = new GatedRunner((line) => (line.startsWith('sh -c ') ? shellOutput() : {}))
    const probing = probeHost(runner, [...TOOLS])
    await settle()
    expect(runner.started).to.have.length(1)
    expect(runner.started[0]).to.match(/^sh -c .*iptables --version.*ipset --version.*ip -V.*conntrack --version.*sysctl -n net.ipv4.ip_forward.*sysctl -n net\/ipv4\/conf\/all\/rp_filter/)
    runner.release()
    const probes = await probing
    expect(probes).to.deep.equal({tools: PRESENT, iptablesFlavour: 'nf_tables', ipForward: '1', rpFilterAll: 2})
  })

  it('tells from the shell a missing tool (how to install it), a failing one (no version) and an unreadable sysctl', async () => {
    const runner = new RecordingRunner(() => shellOutput({'ipset --version': 1, 'conntrack --version': 127, 'sysctl -n net/ipv4/conf/all/rp_filter': 255}))
    const {tools, ipForward, rpFilterAll} = await probeHost(runner, [...TOOLS])
    expect(runner.calls).to.have.length(1)
    expect([ipForward, rpFilterAll]).to.deep.equal(['1', null])
    expect(tools).to.deep.equal([
      PRESENT[0],
      {name: 'ipset', present: true, version: null, install: null},
      PRESENT[2],
      {name: 'conntrack', present: false, version: null, install: 'apt-get install conntrack'},
    ])
  })

  it('checks each tool and reads the sysctls on their own when the shell’s output is not framed as written, or the shell fails', async () => {
    for (const shell of [{stdout: 'iptables v1.8.9 (nf_tables)\n'}, {exitCode: 2, stderr: 'sh: not allowed'}]) {
      const runner = new RecordingRunner((call) => (call.command === 'sh' ? shell : {stdout: VERSIONS[[call.command, ...call.args].join(' ')] ?? '1\n2\n'}))
      const probes = await probeHost(runner, [...TOOLS])
      expect(probes).to.deep.equal({tools: PRESENT, iptablesFlavour: 'nf_tables', ipForward: '1', rpFilterAll: 2})
      expect(runner.calls.map((c) => c.command)).to.have.members(['sh', ...TOOLS, 'sysctl'])
    }
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
