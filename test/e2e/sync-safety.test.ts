/** A sync that cannot apply keeps the old rules working; two smartnat runs never apply at the same time. */
import {expect} from 'chai'
import {iptablesBackend} from '../../src/lib/backend/backend.js'
import {iptablesDump, syncArgs, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, createLab, requireLab, type EchoResult, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture, type ServiceFixture} from '../support/mappings.js'
import {smartnat, smartnatJson, startSmartnat} from '../support/smartnat-cli.js'
import {acquireLock} from '../../src/lib/host/lock.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]

const pod = (r: EchoResult) => (r.ok ? r.fields.pod : r.error)
const mapping = (name: string, address: string, ports: number[]): MappingFixture => ({
  name,
  addresses: [address],
  serviceName: 'web',
  ports: ports.map((port) => ({port, servicePort: 80})),
})

describe('smartnat sync when it cannot apply, and under the lock (root)', function () {
  this.timeout(60_000)
  let lab: Lab
  let dir: ManifestDir
  let web: ServiceFixture

  const write = (mappings: MappingFixture[]) => dir.write({services: [web], mappings})

  before(async function () {
    requireLab(this)
    lab = await createLab()
    web = serviceFromLab('web', lab.services(), VIP)
    dir = await ManifestDir.create()
  })

  afterEach(async function () {
    if (!lab) return
    // The flush command itself is tested next to a foreign ruleset; here only a clean start matters.
    await iptablesBackend(lab.hostRunner).flush({dryRun: false})
  })

  after(async () => {
    await lab?.destroy()
    await dir?.remove()
  })

  it('a failed apply exits non-zero naming what failed, and the old rules and sets keep working', async () => {
    await write([mapping('a', EXT_A, [8080]), mapping('b', EXT_B, [8080])])
    await smartnatJson<SyncJson>(syncArgs(lab, dir))
    // Someone wires a rule of their own into smartnat's chain for EXT_B, so that chain cannot be deleted.
    const chain = new RegExp(`-d ${EXT_B}/32 -j (SNM-A-[0-9a-f]+)`).exec(await iptablesDump(lab))?.[1]
    expect(chain, `address chain of ${EXT_B}`).to.be.a('string')
    await lab.exec('host', 'iptables', ['-t', 'nat', '-N', 'LAB-DEBUG'])
    await lab.exec('host', 'iptables', ['-t', 'nat', '-A', 'LAB-DEBUG', '-s', '198.18.9.9/32', '-j', chain!])
    const rulesBefore = await iptablesDump(lab)
    const setsBefore = (await lab.exec('host', 'ipset', ['save'])).stdout

    // Removing b deletes its chain; the same sync would also add a port to a.
    await write([mapping('a', EXT_A, [8080, 9090])])
    const failed = await smartnat(syncArgs(lab, dir))
    expect(failed.code).to.equal(1)
    expect(failed.stderr).to.include('iptables-restore').and.include(`chain ${chain}`).and.include('Device or resource busy')

    expect(await iptablesDump(lab)).to.equal(rulesBefore)
    expect((await lab.exec('host', 'ipset', ['save'])).stdout).to.equal(setsBefore)
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)))
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_B, 8080)))
    expect(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 9090, {timeoutMs: 800}))).to.equal('refused')

    // Once the foreign reference is gone the same manifests apply.
    await lab.exec('host', 'iptables', ['-t', 'nat', '-F', 'LAB-DEBUG'])
    const repaired = await smartnatJson<SyncJson>(syncArgs(lab, dir))
    expect(repaired.changed).to.equal(true)
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 9090)))
    expect(pod(await lab.tcpRequest('client1', CLIENT, EXT_B, 8080, {timeoutMs: 800}))).to.equal('refused')
    await lab.exec('host', 'iptables', ['-t', 'nat', '-X', 'LAB-DEBUG'])
  })

  it('with --lock-wait 0 a sync fails at once naming the holder; otherwise it waits for the holder and then applies', async () => {
    await write([mapping('a', EXT_A, [8080])])
    const lock = await acquireLock({path: dir.file('smartnat.lock'), purpose: 'watch'})
    try {
      const refused = await smartnat(syncArgs(lab, dir, '--lock-wait', '0'))
      expect(refused.code).to.not.equal(0)
      expect(refused.stderr).to.include(`is held by smartnat watch (pid ${process.pid}`)

      const waiting = startSmartnat(syncArgs(lab, dir, '--lock-wait', '20', '--json'))
      await new Promise((resolve) => setTimeout(resolve, 2500))
      expect(waiting.child.exitCode, 'the sync is still waiting').to.equal(null)
      expect(await iptablesDump(lab)).to.not.include('SNM-')
      await lock.release()
      const done = await waiting.done
      expect(done.code, done.stderr).to.equal(0)
      expect((JSON.parse(done.stdout) as SyncJson).changed).to.equal(true)
    } finally {
      await lock.release()
    }
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)))
  })

  it('two syncs started together both succeed, one after the other: exactly one of them writes', async () => {
    await write([mapping('a', EXT_A, [8080]), mapping('b', EXT_B, [8080])])
    const runs = await Promise.all([0, 1].map(() => startSmartnat(syncArgs(lab, dir, '--json')).done))
    for (const run of runs) expect(run.code, run.stderr).to.equal(0)
    const changed = runs.map((run) => (JSON.parse(run.stdout) as SyncJson).changed).sort()
    expect(changed).to.deep.equal([false, true])
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_B, 8080)))
  })
})
