/**
 * `smartnat status` against the namespace lab, for each backend: clean after a sync, drift naming
 * the Mapping after a piece of it is deleted by hand (and explain saying the packet follows the
 * kernel), clean again after the next sync.
 */
import {expect} from 'chai'
import type {PacketExplanation} from '../../src/lib/explain/packet.js'
import type {StatusReport} from '../../src/lib/status/report.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS, type LabEndpoint} from '../support/backends.js'
import {commandArgs, syncArgs, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab} from '../support/mappings.js'
import {smartnat, smartnatJson} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const [EXT_A, EXT_B] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]
const WEB: LabEndpoint = {address: EXT_A, protocol: 'tcp', port: 8080, target: `${VIP}:80`, mapping: 'default/web'}

for (const backend of BACKENDS) describe(`smartnat status in the namespace lab (root, ${backend.name})`, function () {
  this.timeout(120_000)
  let lab: Lab
  let dir: ManifestDir

  const status = async (...flags: string[]) => {
    const result = await smartnat(commandArgs('status', backend.name, lab, dir, ...flags))
    return {...result, report: flags.includes('--json') ? (JSON.parse(result.stdout) as StatusReport) : undefined}
  }

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    await dir.write({
      services: [serviceFromLab('web', lab.services(), VIP)],
      mappings: [
        {name: 'web', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}]},
        {name: 'dns', addresses: [EXT_B], allowedSources: [CLIENT], serviceName: 'web', ports: [{port: 53, protocol: 'udp'}]},
        {name: 'far-away', addresses: ['198.18.9.9'], serviceName: 'web', ports: [{port: 80}]},
      ],
    })
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  it('before any sync, exits non-zero: strict rp_filter, and none of smartnat’s rules', async () => {
    const {code, report} = await status('--json')
    expect(code).to.equal(4)
    expect(report!.host.problems).to.deep.equal([
      'rp_filter is strict on eth1: replies routed by its own table may be dropped; `smartnat sync` makes it loose',
      'rp_filter is strict on eth2: replies routed by its own table may be dropped; `smartnat sync` makes it loose',
    ])
    expect(report!.kernel).to.deep.equal({readable: true, reason: null, installed: false})
  })

  it('after a sync, every Mapping has its state, counters count where the backend keeps them, and the exit code is 0', async () => {
    await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir))
    const answer = await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)
    expect(answer.ok).to.equal(true)
    const {code, report, stderr} = await status('--json')
    expect(code, stderr).to.equal(0)
    expect(report!.host.ipForward).to.equal('1')
    expect(report!.host.tools.filter((t) => !t.present)).to.deep.equal([])
    expect(report!.host.interfaces.map((i) => [i.name, i.table, i.gateway, i.rpFilter])).to.deep.equal([
      ['eth1', 7001, '198.18.0.1', 2],
      ['eth2', 7002, '198.18.2.1', 2],
    ])
    expect(report!.mappings.map((m) => [m.name, m.state])).to.deep.equal([
      ['dns', 'configured'],
      ['far-away', 'not-local'],
      ['web', 'configured'],
    ])
    const web = report!.mappings.find((m) => m.name === 'web')!
    expect(web.endpoints).to.deep.equal(['198.19.200.11', '198.19.200.12'])
    expect(report!.countsPackets).to.equal(backend.countsPackets)
    expect(web.rules.map((r) => r.inKernel)).to.deep.equal([true])
    if (backend.countsPackets) {
      // One connection: its first packet is the one the DNAT rule counts.
      expect(web.packets).to.equal(1)
      expect(web.bytes).to.be.greaterThan(0)
    } else {
      // Not counted is not zero.
      expect([web.packets, web.bytes, web.rules[0]!.packets]).to.deep.equal([null, null, null])
      const human = await status()
      expect(human.stdout).to.include(`kernel: ${backend.name} rules read back; they keep no packet counters, so PACKETS shows -`)
      expect(human.stdout).to.match(/^default\/web\s.*\sconfigured\s+-$/m)
    }
  })

  it('a piece of a Mapping deleted by hand is drift: exit 3, naming the Mapping; explain says the packet follows the kernel', async () => {
    const missing = await backend.removeMappingPart(lab, WEB)

    const json = await status('--json')
    expect(json.code).to.equal(3)
    const web = json.report!.mappings.find((m) => m.name === 'web')!
    expect(web.state).to.equal('drifted')
    expect(web.drift.missing).to.deep.equal([missing])
    expect(web.drift.unexpected).to.deep.equal([])
    expect(json.report!.mappings.find((m) => m.name === 'dns')!.state).to.equal('configured')

    const human = await status()
    expect(human.code).to.equal(3)
    expect(human.stdout).to.match(/^default\/web\s.*\sdrifted\s/m)
    expect(human.stdout).to.include(`  default/web  missing     ${missing}`)

    const explained = await smartnatJson<PacketExplanation>(commandArgs('explain', backend.name, lab, dir, '--src', CLIENT, '--dst', `${EXT_A}:8080`))
    expect(explained).to.include({verdict: 'drop', agree: false, decidedBy: 'kernel'})
    expect(explained.desired).to.include({verdict: 'forward', target: `${VIP}:80`})
    expect((await lab.tcpRequest('client1', CLIENT, EXT_A, 8080, {timeoutMs: 800})).ok).to.equal(false)

    const mapping = await smartnatJson<{parts: {where: string; text: string; inKernel: boolean}[]}>(commandArgs('explain', backend.name, lab, dir, 'web'))
    expect(mapping.parts.filter((p) => !p.inKernel).map((p) => `${p.where}: ${p.text}`)).to.deep.equal([missing])
  })

  it('the next sync repairs it and status is clean again', async () => {
    const synced = await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir))
    expect(synced.changed).to.equal(true)
    const {code, report} = await status('--json')
    expect(code).to.equal(0)
    expect(report!.mappings.every((m) => m.drift.missing.length === 0 && m.drift.unexpected.length === 0)).to.equal(true)
    expect((await lab.tcpRequest('client1', CLIENT, EXT_A, 8080)).ok).to.equal(true)
    const human = await status('-o', 'wide')
    expect(human.code).to.equal(0)
    expect(human.stdout).to.include('drift: none, the kernel matches the desired state')
  })

  it('-n narrows to one namespace; -o yaml prints the same report', async () => {
    const {report} = await status('--json', '-n', 'nowhere')
    expect(report!.mappings).to.deep.equal([])
    const yaml = await status('-o', 'yaml')
    expect(yaml.code).to.equal(0)
    expect(yaml.stdout).to.match(/^mappings:$/m)
    expect(yaml.stdout).to.include('state: configured')
  })
})
