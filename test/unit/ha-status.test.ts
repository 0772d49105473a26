/** `smartnat status` for an HA pair: floating addresses' roles and conntrackd's sync, from recorded `ip` and `conntrackd` outputs. */
import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {outputPaint} from '../../src/lib/format/columns.js'
import {parseSyncLink} from '../../src/lib/host/conntrackd.js'
import {parseFloatingAddresses} from '../../src/lib/plan/floating.js'
import {statusLines} from '../../src/lib/status/format.js'
import {gatherHaStatus, type HaStatus} from '../../src/lib/status/ha.js'
import type {HostStatus} from '../../src/lib/status/host.js'
import {buildStatusReport, statusExitCode, STATUS_EXIT} from '../../src/lib/status/report.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {desiredState, inspect} from './explain-fixture.js'

const recorded = (name: string) => readFileSync(new URL(`fixtures/conntrackd/${name}.txt`, import.meta.url), 'utf8')

// `ip -j -4 addr show` of an active host: keepalived added 198.18.0.10 (as /32) beside the host's own address.
const ACTIVE_ADDRESSES = JSON.stringify([
  {ifindex: 1, ifname: 'lo', addr_info: [{family: 'inet', local: '127.0.0.1', prefixlen: 8}]},
  {ifindex: 2, ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.2', prefixlen: 24}, {family: 'inet', local: '198.18.0.10', prefixlen: 32}]},
  {ifindex: 3, ifname: 'eth2', addr_info: [{family: 'inet', local: '198.18.2.2', prefixlen: 24}]},
])
const STANDBY_ADDRESSES = JSON.stringify([
  {ifindex: 2, ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.3', prefixlen: 24}]},
  // The same address on another interface is not the floating address on its interface.
  {ifindex: 3, ifname: 'eth2', addr_info: [{family: 'inet', local: '198.18.0.11', prefixlen: 24}]},
])

const FLOATING = parseFloatingAddresses('eth1=198.18.0.10/24,eth1=198.18.0.11/24')

/** A runner answering `ip` with `addresses` and each `conntrackd -s link` with the next of `links` (an Error: conntrackd not answering). */
function host(addresses: string, links: (string | Error)[]): RecordingRunner {
  let link = 0
  return new RecordingRunner((call) => {
    if (call.command === 'ip') return {stdout: addresses}
    const answer = links[link++]
    if (answer === undefined) throw new Error('conntrackd asked more often than recorded')
    return answer instanceof Error ? answer : {stdout: answer}
  })
}

async function gather(runner: RecordingRunner): Promise<HaStatus> {
  const waits: number[] = []
  const status = await gatherHaStatus(runner, {floating: FLOATING, conntrackdConfig: '/tmp/ha/conntrackd.conf', sampleMs: 1500, sleep: async (ms) => void waits.push(ms)})
  expect(waits, 'one wait between the two samples').to.deep.equal([1500])
  return status
}

describe('HA status', () => {
  it('parses conntrackd -s link', () => {
    expect(parseSyncLink(recorded('link-running-2'))).to.deep.equal({device: 'hxa', status: 'RUNNING', packetsReceived: 13})
    expect(parseSyncLink(recorded('link-down'))).to.deep.equal({device: 'hxa', status: 'DOWN', packetsReceived: 13})
    expect(() => parseSyncLink('resent queue (len=0)\n')).to.throw('conntrackd -s link: no sync link in its output: "resent queue (len=0)\\n"')
  })

  it('calls the host active for a floating address assigned on its interface, standby otherwise, and the sync healthy when the peer was heard', async () => {
    const runner = host(ACTIVE_ADDRESSES, [recorded('link-running-1'), recorded('link-running-2')])
    expect(await gather(runner)).to.deep.equal({
      floating: [
        {address: '198.18.0.10', interface: 'eth1', role: 'active'},
        {address: '198.18.0.11', interface: 'eth1', role: 'standby'},
      ],
      sync: {healthy: true, device: 'hxa', linkStatus: 'RUNNING', packetsFromPeer: 1, problem: null},
    })
    expect(runner.calls.filter((c) => c.command === 'conntrackd').map((c) => c.args.join(' '))).to.deep.equal([
      '-C /tmp/ha/conntrackd.conf -s link',
      '-C /tmp/ha/conntrackd.conf -s link',
    ])
  })

  const unhealthy: {name: string; links: (string | Error)[]; problem: string}[] = [
    {
      name: 'the peer silent while the link is up',
      links: [recorded('link-peer-gone-1'), recorded('link-peer-gone-2')],
      problem: 'conntrackd heard nothing from its peer on hxa in 1500 ms: the peer\'s conntrackd is down or unreachable',
    },
    {name: 'the sync link down', links: [recorded('link-peer-gone-2'), recorded('link-down')], problem: 'conntrackd\'s sync link hxa is DOWN: connections are not replicated'},
    {
      name: 'conntrackd not running',
      links: [new CommandError('conntrackd', ['-s', 'link'], 1, "can't connect: is conntrackd running? appropriate permissions?")],
      problem: 'conntrackd (/tmp/ha/conntrackd.conf) does not answer',
    },
  ]
  for (const {name, links, problem} of unhealthy) {
    it(`calls the sync not healthy with ${name}, and status exits with code 6`, async () => {
      const runner = host(STANDBY_ADDRESSES, links)
      const waits: number[] = []
      const ha = await gatherHaStatus(runner, {floating: FLOATING, conntrackdConfig: '/tmp/ha/conntrackd.conf', sampleMs: 1500, sleep: async (ms) => void waits.push(ms)})
      expect(ha.floating.map((f) => f.role)).to.deep.equal(['standby', 'standby'])
      expect(ha.sync.healthy).to.equal(false)
      expect(ha.sync.problem).to.contain(problem)
      const {inspection} = await inspect({state: desiredState()})
      expect(statusExitCode(buildStatusReport(inspection, HOST, {}, ha))).to.equal(STATUS_EXIT.haSync)
      expect(statusExitCode(buildStatusReport(inspection, HOST, {}, {...ha, sync: {...ha.sync, healthy: true, problem: null}}))).to.equal(STATUS_EXIT.ok)
    })
  }

  it('prints the roles and the sync on one line under the host', async () => {
    const ha = await gather(host(ACTIVE_ADDRESSES, [recorded('link-running-1'), recorded('link-running-2')]))
    const {inspection} = await inspect({state: desiredState()})
    const lines = statusLines(buildStatusReport(inspection, HOST, {}, ha), {paint: outputPaint({isTTY: false}, {}), wide: false})
    expect(lines).to.include('ha: 198.18.0.10 (eth1) active, 198.18.0.11 (eth1) standby; sync healthy on hxa (peer heard: 1 messages in the sample)')
  })
})

const HOST: HostStatus = {
  ipForward: '1',
  tools: [],
  iptablesFlavour: 'nf_tables',
  lock: {path: '/run/smartnat/smartnat.lock', held: false, holder: null},
  interfaces: [],
  problems: [],
}
