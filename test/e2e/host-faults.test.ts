/**
 * Faults of the host, for each backend: one external interface this host cannot serve leaves the
 * others served and its Mappings told why; iptables' FORWARD policy DROP (Docker's) lets smartnat's
 * traffic through, with its accept owned and flushed, and with --no-forward-accept the Mappings
 * say their traffic is dropped.
 */
import {expect} from 'chai'
import type {StatusReport} from '../../src/lib/status/report.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS, cleanHost} from '../support/backends.js'
import {commandArgs, kernelDump, syncArgs, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, type EchoResult, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type MappingFixture} from '../support/mappings.js'
import {smartnat} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const EXT_2 = LAB_PLAN.host.eth2.addresses[0]
const CLIENT = LAB_PLAN.client1.addresses[0]
const SILENCE = {timeoutMs: 800}
const OWNED_ACCEPT = '-A FORWARD -m connmark ! --mark 0x0/0xff00000 -m comment --comment smartnat-nftables -j ACCEPT'

const pod = (r: EchoResult) => (r.ok ? r.fields.pod : r.error)

for (const backend of BACKENDS) describe(`faults of the host in the namespace lab (root, ${backend.name})`, function () {
  this.timeout(120_000)
  let lab: Lab
  let dir: ManifestDir

  const sync = (...flags: string[]) => smartnat([...syncArgs(backend.name, lab, dir, ...flags), '--json'])
  /** For a person: warnings on stderr, and --strict's exit code (--json reports any error as 1). */
  const syncForPerson = (...flags: string[]) => smartnat(syncArgs(backend.name, lab, dir, ...flags))
  const status = async (...flags: string[]) => {
    const result = await smartnat([...commandArgs('status', backend.name, lab, dir, ...flags), '--json'])
    return {code: result.code, report: JSON.parse(result.stdout) as StatusReport}
  }

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
  })

  afterEach(async function () {
    if (lab) await cleanHost(lab, backend)
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  describe('an external interface whose gateway --gw-offset cannot place', () => {
    const FAULT = `interface eth2: --gw-offset 1 falls outside the hosts of ${EXT_2}/32 (${EXT_2}..${EXT_2})`
    const mappings: MappingFixture[] = [
      {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]},
      {name: 'both', addresses: [EXT_B, EXT_2], serviceName: 'web', ports: [{port: 8081, servicePort: 80}]},
      {name: 'on-eth2', addresses: [EXT_2], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]},
    ]

    before(async () => {
      // A /32 leaves no other host of eth2's subnet to be its gateway.
      await lab.exec('host', 'ip', ['addr', 'replace', `${EXT_2}/32`, 'dev', 'eth2'])
      await lab.exec('host', 'ip', ['addr', 'del', `${EXT_2}/24`, 'dev', 'eth2'])
      await dir.write({services: [serviceFromLab('web', lab.services(), VIP)], mappings})
    })

    after(async () => {
      await lab.exec('host', 'ip', ['addr', 'replace', `${EXT_2}/24`, 'dev', 'eth2'])
      await lab.exec('host', 'ip', ['addr', 'del', `${EXT_2}/32`, 'dev', 'eth2'])
    })

    it('programs every other interface and Mapping, tells the Mappings on it why they are not served, and says so', async () => {
      const synced = await sync()
      expect(synced.code, synced.stderr).to.equal(0)
      const out = JSON.parse(synced.stdout) as SyncJson
      expect(out).to.include({configured: 2, invalid: 0, faulty: 2})
      expect(out.faults).to.deep.equal([`${FAULT}; no Mapping is served on its addresses`])
      expect(out.mappings.map((m) => [m.name, Object.keys(m.configuredAddresses), m.faults])).to.deep.equal([
        ['both', [EXT_B], {[EXT_2]: FAULT}],
        ['on-eth2', [], {[EXT_2]: FAULT}],
        ['web', [EXT_A], {}],
      ])

      expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)))
      expect(PODS).to.include(pod(await lab.udpRequest('client1', CLIENT, EXT_A, 5300)))
      expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_B, 8081)))
      // eth1 keeps its reply table; eth2 gets none.
      expect((await lab.exec('host', 'ip', ['-4', 'rule', 'show'])).stdout).to.include('lookup 7001').and.not.include('7002')

      const human = await syncForPerson()
      expect(human.code).to.equal(0)
      expect(human.stdout).to.match(new RegExp(`^default/on-eth2\\s+not served on ${EXT_2.replace(/\./g, '\\.')}: interface eth2: --gw-offset 1 falls outside`, 'm'))
      expect(human.stdout).to.match(/^default\/web\s+configured on 198\.18\.0\.10$/m)
      expect(human.stderr).to.include('Warning: interface eth2: --gw-offset 1 falls outside')
    })

    it('status exits 4 naming the interface and why; its Mappings are faulty, the others configured', async () => {
      await sync()
      const {code, report} = await status()
      expect(code).to.equal(4)
      expect(report.host.problems).to.include(`${FAULT}; no Mapping is served on its addresses`)
      expect(report.host.interfaces.map((i) => [i.name, i.table, i.fault])).to.deep.equal([
        ['eth1', 7001, null],
        ['eth2', null, FAULT],
      ])
      expect(report.mappings.map((m) => [m.name, m.state, m.reason])).to.deep.equal([
        ['both', 'faulty', `${EXT_2} not served: ${FAULT}`],
        ['on-eth2', 'faulty', `${EXT_2} not served: ${FAULT}`],
        ['web', 'configured', null],
      ])
    })

    it('with --strict the sync exits 3, having programmed the rest', async () => {
      const synced = await syncForPerson('--strict')
      expect(synced.code).to.equal(3)
      expect(synced.stderr).to.include('2 Mapping(s) not served on every address')
      expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)))
    })
  })

  describe('iptables’ FORWARD policy DROP', () => {
    let foreignOnly: string

    before(async () => {
      await lab.exec('host', 'iptables', ['-P', 'FORWARD', 'DROP'])
      await dir.write({
        services: [serviceFromLab('web', lab.services(), VIP)],
        mappings: [{name: 'web', addresses: [EXT_A, EXT_2], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]}],
      })
      foreignOnly = await kernelDump(lab)
    })

    after(async () => {
      await lab.exec('host', 'iptables', ['-P', 'FORWARD', 'ACCEPT'])
    })

    const trafficChecks = async () => [
      pod(await lab.tcpRequest('client1', CLIENT, EXT_A, 8080, SILENCE)),
      pod(await lab.udpRequest('client1', CLIENT, EXT_A, 5300, SILENCE)),
      pod(await lab.tcpRequest('client2', undefined, EXT_2, 8080, SILENCE)),
      pod(await lab.udpRequest('client2', undefined, EXT_2, 5300, SILENCE)),
    ]
    const forwardRules = async () => (await lab.exec('host', 'iptables', ['-S', 'FORWARD'])).stdout.trim().split('\n').slice(1)

    it('the sync lets smartnat’s connections through, once; flush removes its accept and leaves the rest as it was', async () => {
      const synced = await sync()
      expect(synced.code, synced.stderr).to.equal(0)
      expect(JSON.parse(synced.stdout)).to.include({configured: 1, faulty: 0})
      for (const answer of await trafficChecks()) expect(PODS).to.include(answer)
      if (backend.name === 'nftables') expect(await forwardRules()).to.deep.equal([OWNED_ACCEPT])

      const again = JSON.parse((await sync()).stdout) as SyncJson
      expect(again).to.include({changed: false})
      if (backend.name === 'nftables') expect(await forwardRules()).to.deep.equal([OWNED_ACCEPT])
      expect((await status()).code).to.equal(0)

      const flushed = await smartnat(['flush', '--yes', '--netns', lab.ns('host'), '--lock-file', dir.file('smartnat.lock')])
      expect(flushed.code, flushed.stderr).to.equal(0)
      if (backend.name === 'nftables') expect(flushed.stdout).to.include(`filter: ${OWNED_ACCEPT}`)
      expect(await kernelDump(lab)).to.equal(foreignOnly)
    })

    it('with --no-forward-accept, the nftables backend writes nothing there: its Mappings are not ready and status exits 4', async () => {
      const synced = await sync('--no-forward-accept')
      expect(synced.code, synced.stderr).to.equal(0)
      const out = JSON.parse(synced.stdout) as SyncJson
      if (backend.name === 'iptables') {
        // Its jump into SNM-FORWARD goes first in FORWARD whatever the flag says.
        expect(out).to.include({configured: 1, faulty: 0})
        for (const answer of await trafficChecks()) expect(PODS).to.include(answer)
        return
      }
      const reason = "forwarded traffic is dropped: iptables' FORWARD chain drops by default (policy DROP), which the nftables backend's accept cannot overrule"
      expect(out).to.include({configured: 1, faulty: 1})
      expect(out.mappings[0]!.faults).to.deep.equal({[EXT_A]: reason, [EXT_2]: reason})
      expect(out.faults).to.have.length(1)
      expect(out.faults[0]).to.include('--no-forward-accept keeps smartnat from doing it')
      expect(await forwardRules()).to.deep.equal([])
      expect(await trafficChecks()).to.deep.equal(['timeout', 'timeout', 'timeout', 'timeout'])

      const {code, report} = await status('--no-forward-accept')
      expect(code).to.equal(4)
      expect(report.mappings.map((m) => [m.name, m.state])).to.deep.equal([['web', 'faulty']])
      const strict = await syncForPerson('--no-forward-accept', '--strict')
      expect(strict.code).to.equal(3)
      expect(strict.stderr).to.include("Warning: iptables' FORWARD chain drops by default")
    })

    // The iptables backend has no accept of its own in FORWARD to turn off.
    if (backend.name === 'nftables') it('turning the accept off removes it again', async () => {
      await sync()
      expect(await forwardRules()).to.deep.equal([OWNED_ACCEPT])
      const off = JSON.parse((await sync('--no-forward-accept')).stdout) as SyncJson
      expect(off).to.include({changed: true})
      expect(await forwardRules()).to.deep.equal([])
    })
  })
})
