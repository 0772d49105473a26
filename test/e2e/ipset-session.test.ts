/**
 * The kept `ipset -exist -` against the real ipset, in a network namespace of its own: entries added
 * and deleted through it land in the kernel as with `ipset restore -exist`, a failing line fails the
 * run naming its payload line, and a daemon's iptables backend writes a change's entries through it.
 */
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {IpsetSession} from '../../src/lib/backend/iptables/ipset-session.js'
import {createBackend} from '../../src/lib/backend/registry.js'
import {CommandError, ExecRunner, type RunOptions, type RunResult} from '../../src/lib/host/runner.js'
import {requireNeeds} from '../support/requirements.js'
import {cidr, sampleModel} from '../unit/nat-model-fixture.js'

const NETNS = `snm-ipset-${process.pid}`

/** The namespace's runner, counting the processes it was asked to start (a conversation is not one). */
class CountedRunner extends ExecRunner {
  runs: string[] = []
  constructor() {
    super({timeoutSeconds: 10, netns: NETNS})
  }
  override run(command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    this.runs.push([command, ...args].join(' '))
    return super.run(command, args, options)
  }
}

describe('the kept ipset -exist - (root, network namespace)', function () {
  this.timeout(30_000)
  let runner: CountedRunner
  let session: IpsetSession
  const saved = async () => (await new ExecRunner({timeoutSeconds: 10, netns: NETNS}).run('ipset', ['save'])).stdout

  before(function () {
    requireNeeds(this, 'the ipset session test', {root: true, tools: ['ip', 'ipset', 'iptables-restore']})
    const added = spawnSync('ip', ['netns', 'add', NETNS], {encoding: 'utf8'})
    if (added.status !== 0) throw new Error(`ip netns add ${NETNS}: ${added.stderr}`)
    // The sample model's interfaces, for its reply routes.
    const links = [
      ['eth1', '198.18.0.10/24'],
      ['eth2', '198.18.1.10/24', '198.18.3.5/25'],
      ['eth3', '198.18.2.10/24'],
    ]
    const commands = links.flatMap(([name, ...addresses]) => [`link add ${name} type veth peer name ${name}-peer`, `link set ${name} up`, ...addresses.map((address) => `addr add ${address} dev ${name}`)])
    const made = spawnSync('ip', ['-n', NETNS, '-batch', '-'], {input: `${commands.join('\n')}\n`, encoding: 'utf8'})
    if (made.status !== 0) throw new Error(`interfaces in ${NETNS}: ${made.stderr}`)
  })
  after(() => {
    session?.close()
    spawnSync('ip', ['netns', 'del', NETNS])
  })
  beforeEach(async () => {
    runner = new CountedRunner()
    session = new IpsetSession(runner)
    await runner.run('ipset', ['restore', '-exist'], {input: 'create snm-test hash:ip,port family inet\nflush snm-test\n'})
    runner.runs.length = 0
  })
  afterEach(() => session.close())

  it('adds and deletes entries, existing and missing ones as -exist does, without starting ipset restore', async () => {
    await session.run('ipset', ['restore', '-exist'], {input: 'add snm-test 198.18.0.1,tcp:80\nadd snm-test 198.18.0.2,udp:53\nadd snm-test 198.18.0.1,tcp:80\ndel snm-test 198.18.0.9,tcp:1\n'})
    await session.run('ipset', ['restore', '-exist'], {input: 'del snm-test 198.18.0.2,udp:53\n'})
    const entries = (await saved()).split('\n').filter((line) => line.startsWith('add snm-test '))
    expect(entries).to.deep.equal(['add snm-test 198.18.0.1,tcp:80'])
    expect(runner.runs).to.deep.equal([])
  })

  it('fails a line as ipset restore does, naming the payload line; the other lines ran', async () => {
    let failure: unknown
    try {
      await session.run('ipset', ['restore', '-exist'], {input: 'add snm-test 198.18.0.3,tcp:80\nadd snm-missing 198.18.0.4\nadd snm-test 198.18.0.5,tcp:80\n'})
    } catch (error) {
      failure = error
    }
    expect(failure).to.be.instanceOf(CommandError)
    expect((failure as CommandError).stderr).to.match(/^line 2: ipset v[\d.]+: The set with the given name does not exist\n$/)
    expect(await saved()).to.include('add snm-test 198.18.0.3,tcp:80').and.include('add snm-test 198.18.0.5,tcp:80')
    // The session answers the next payload.
    await session.run('ipset', ['restore', '-exist'], {input: 'del snm-test 198.18.0.3,tcp:80\n'})
    expect(await saved()).to.not.include('198.18.0.3,tcp:80')
  })

  it('leaves to ipset restore what is not entries added or deleted', async () => {
    await session.run('ipset', ['restore', '-exist'], {input: 'create snm-other hash:ip family inet\nadd snm-other 198.18.0.6\n'})
    expect(runner.runs).to.deep.equal(['ipset restore -exist'])
    expect(await saved()).to.include('add snm-other 198.18.0.6')
  })

  it("writes a daemon's change of entries through it, and a one-shot command's through ipset restore", async () => {
    const model = sampleModel()
    const daemon = createBackend('iptables', runner, {longLived: true, rendersAgain: true})
    const first = daemon.render(model)
    await daemon.apply(first)
    runner.runs.length = 0
    const changed = sampleModel()
    const mapping = changed.mappings.find((m) => !m.allowedSources.some((source) => source === '0.0.0.0/0'))!
    mapping.allowedSources = [...mapping.allowedSources, cidr('198.18.99.0/24')]
    await daemon.apply(daemon.render(changed), {assumeActual: first})
    expect(runner.runs.filter((run) => run.startsWith('ipset'))).to.deep.equal([])
    expect(await saved()).to.include('198.18.99.0/24')

    const oneShot = createBackend('iptables', runner)
    runner.runs.length = 0
    await oneShot.apply(oneShot.render(model))
    expect(runner.runs.filter((run) => run.startsWith('ipset restore'))).to.deep.equal(['ipset restore -exist'])
    expect(await saved()).to.not.include('198.18.99.0/24')
  })
})
