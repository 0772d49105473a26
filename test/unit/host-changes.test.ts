import {expect} from 'chai'
import {HOST_MONITOR, HostChanges} from '../../src/lib/host/host-changes.js'
import type {Follower} from '../../src/lib/host/runner.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type Snapshot} from '../../src/lib/plan/model.js'
import {syncPass} from '../../src/lib/sync/watch.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {inertBackend} from '../support/inert-backend.js'

const EXT = '198.18.0.10' as Ipv4
const IP_ADDR = JSON.stringify([{ifindex: 2, ifname: 'eth1', addr_info: [{family: 'inet', local: EXT, prefixlen: 24}]}])
const backend = inertBackend()
const empty: Snapshot = {mappings: [], services: [], endpointSlices: []}

/** A runner whose followed process prints when told to, and ends when told to. */
class FollowingRunner extends RecordingRunner {
  followed: {command: string; args: string[]}[] = []
  print: (chunk: string) => void = () => {}
  end: () => void = () => {}

  constructor() {
    super((call) => (call.command === 'ip' ? {stdout: IP_ADDR} : call.command === 'sysctl' ? {stdout: '2\n2\n'} : {}))
  }

  follow(command: string, args: string[], onOutput: (chunk: string) => void): Follower {
    this.followed.push({command, args})
    this.print = onOutput
    const ended = new Promise<void>((resolve) => (this.end = resolve))
    return {ended, stop: async () => this.end()}
  }
}

describe('the daemon follows the host instead of reading it on every pass', () => {
  const hostReads = (runner: RecordingRunner) => runner.calls.filter((c) => c.command === 'ip' && c.args.includes('addr')).length

  it('a pass trusting the kernel also trusts the host while the monitor saw no change; a change, a reading pass or a dead monitor reads it again', async () => {
    const runner = new FollowingRunner()
    const changes = new HostChanges(runner)
    let heard = 0
    changes.onChange(() => heard++)
    changes.start()
    expect(runner.followed).to.deep.equal([{command: HOST_MONITOR[0], args: [...HOST_MONITOR[1]]}])
    const pass = syncPass({runner, backend}, {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth1$/}, changes)
    const reads: number[] = []
    const run = async (trusting: boolean) => {
      const before = hostReads(runner)
      const report = await pass(async () => empty, trusting ? {full: false, assumeActual: 'state'} : {full: false})
      reads.push(hostReads(runner) - before)
      expect(report.host.interfaces.map((i) => i.name)).to.deep.equal(['eth1'])
    }
    await run(true) // nothing read yet
    await run(true)
    await run(true)
    runner.print('3: eth1    inet 198.18.0.11/24 scope global eth1\n')
    expect(heard, 'a change asks for a pass').to.equal(1)
    await run(true)
    await run(true)
    await run(false) // a periodic resync reads everything
    await run(true)
    runner.end()
    await new Promise((resolve) => setImmediate(resolve))
    await run(true)
    await run(true)
    expect(reads).to.deep.equal([1, 0, 0, 1, 0, 1, 0, 1, 1])
    await changes.stop()
  })

  it('where processes cannot be followed, every pass reads the host', async () => {
    const runner = new RecordingRunner((call) => (call.command === 'ip' ? {stdout: IP_ADDR} : call.command === 'sysctl' ? {stdout: '2\n2\n'} : {}))
    const changes = new HostChanges(runner)
    changes.start()
    const pass = syncPass({runner, backend}, {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth1$/}, changes)
    for (let i = 0; i < 3; i++) await pass(async () => empty, {full: false, assumeActual: 'state'})
    expect(hostReads(runner)).to.equal(3)
  })
})
