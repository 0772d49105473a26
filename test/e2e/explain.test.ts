/**
 * `smartnat explain --json` against the namespace lab, for each backend: for each (source,
 * destination, port, protocol) the verdict the trace predicts must be what a real connection attempt does.
 */
import {expect} from 'chai'
import type {PacketExplanation} from '../../src/lib/explain/packet.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS} from '../support/backends.js'
import {commandArgs, syncArgs, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, type EchoResult, type Lab, type LabNamespace, type LabProtocol} from '../support/lab.js'
import {ManifestDir, serviceFromLab, type ServiceFixture} from '../support/mappings.js'
import {smartnatJson} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const [EXT_A, EXT_B, EXT_C] = LAB_PLAN.host.eth1.addresses
const EXT_2 = LAB_PLAN.host.eth2.addresses[0]
const [CLIENT, STRANGER] = LAB_PLAN.client1.addresses
const CLIENT2 = LAB_PLAN.client2.addresses[0]
const WEB_PODS = ['198.19.200.11', '198.19.200.12']

interface Case {
  from: LabNamespace
  src: string
  dst: string
  port: number
  protocol: LabProtocol
  /** What explain must say; the connection attempt must then agree. */
  want: 'forward' | 'drop' | 'unmatched'
}

const c = (from: LabNamespace, src: string, dst: string, port: number, protocol: LabProtocol, want: Case['want']): Case => ({from, src, dst, port, protocol, want})

const CASES: Case[] = [
  // EXT_A: open to all, ports translated (8080 -> 80, 5300/udp -> 53)
  c('client1', CLIENT, EXT_A, 8080, 'tcp', 'forward'),
  c('client1', STRANGER, EXT_A, 8080, 'tcp', 'forward'),
  c('client1', CLIENT, EXT_A, 5300, 'udp', 'forward'),
  c('client1', STRANGER, EXT_A, 5300, 'udp', 'forward'),
  c('client1', CLIENT, EXT_A, 80, 'tcp', 'unmatched'),
  c('client1', CLIENT, EXT_A, 53, 'udp', 'unmatched'),
  c('client1', CLIENT, EXT_A, 8080, 'udp', 'unmatched'),
  c('client1', STRANGER, EXT_A, 8081, 'tcp', 'unmatched'),
  // EXT_B: only CLIENT may connect
  c('client1', CLIENT, EXT_B, 80, 'tcp', 'forward'),
  c('client1', STRANGER, EXT_B, 80, 'tcp', 'drop'),
  c('client1', CLIENT, EXT_B, 53, 'udp', 'forward'),
  c('client1', STRANGER, EXT_B, 53, 'udp', 'drop'),
  c('client1', CLIENT, EXT_B, 8080, 'tcp', 'unmatched'),
  c('client1', STRANGER, EXT_B, 8080, 'udp', 'unmatched'),
  // EXT_C: only an invalid Mapping asks for it
  c('client1', CLIENT, EXT_C, 9000, 'tcp', 'unmatched'),
  c('client1', STRANGER, EXT_C, 80, 'tcp', 'unmatched'),
  // eth2: client2's network is allowed on 80 and 53; 443 only from an address client2 does not have
  c('client2', CLIENT2, EXT_2, 80, 'tcp', 'forward'),
  c('client2', CLIENT2, EXT_2, 53, 'udp', 'forward'),
  c('client2', CLIENT2, EXT_2, 443, 'tcp', 'drop'),
  c('client2', CLIENT2, EXT_2, 81, 'tcp', 'unmatched'),
  c('client2', CLIENT2, EXT_2, 5300, 'udp', 'unmatched'),
  c('client2', CLIENT2, EXT_2, 53, 'tcp', 'unmatched'),
]

for (const backend of BACKENDS) describe(`smartnat explain against real connections in the namespace lab (root, ${backend.name})`, function () {
  this.timeout(180_000)
  let lab: Lab
  let dir: ManifestDir
  let web: ServiceFixture

  const explain = (...flags: string[]) => smartnatJson<PacketExplanation>(commandArgs('explain', backend.name, lab, dir, ...flags))

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    web = serviceFromLab('web', lab.services(), VIP)
    // The Service lives in "default"; the shop Mappings need their own copy of it.
    await dir.write({
      services: [web, {...web, namespace: 'shop'}],
      mappings: [
        {name: 'open', addresses: [EXT_A], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]},
        {name: 'client-only', addresses: [EXT_B], allowedSources: [CLIENT], serviceName: 'web', ports: [{port: 80}, {port: 53, protocol: 'udp'}]},
        {name: 'broken', addresses: [EXT_C], serviceName: 'no-such-service', ports: [{port: 9000}]},
        {name: 'far', namespace: 'shop', addresses: [EXT_2], allowedSources: ['198.18.3.0/24'], serviceName: 'web', ports: [{port: 80}, {port: 53, protocol: 'udp'}]},
        {name: 'strict', namespace: 'shop', addresses: [EXT_2], allowedSources: ['198.18.3.100'], serviceName: 'web', ports: [{port: 443, servicePort: 80}]},
      ],
    })
    const synced = await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir))
    expect(synced).to.include({configured: 4, invalid: 1})
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  it(`predicts the fate of ${CASES.length} connection attempts: forward exactly when a pod answers`, async () => {
    expect(new Set(CASES.map((k) => k.want))).to.deep.equal(new Set(['forward', 'drop', 'unmatched']))
    const explained: PacketExplanation[] = []
    // A few CLI processes at a time: each reads the kernel on its own.
    for (let i = 0; i < CASES.length; i += 6) {
      explained.push(
        ...(await Promise.all(
          CASES.slice(i, i + 6).map((k) =>
            explain('--src', k.src, '--dst', `${k.dst}:${k.port}/${k.protocol}`),
          ),
        )),
      )
    }
    const mismatches: string[] = []
    for (const [i, k] of CASES.entries()) {
      const e = explained[i]!
      const name = `${k.src} -> ${k.dst}:${k.port}/${k.protocol}`
      expect(e, name).to.include({decidedBy: 'kernel', agree: true})
      if (e.verdict !== k.want) mismatches.push(`${name}: explain says ${e.verdict}, expected ${k.want}`)
      const attempt: EchoResult =
        k.protocol === 'tcp'
          ? await lab.tcpRequest(k.from, k.src, k.dst, k.port, {timeoutMs: 800})
          : await lab.udpRequest(k.from, k.src, k.dst, k.port, {timeoutMs: 800})
      const answeredByPod = attempt.ok && WEB_PODS.includes(attempt.fields.pod ?? '')
      if (answeredByPod !== (e.verdict === 'forward')) {
        mismatches.push(`${name}: explain says ${e.verdict}, the connection ${attempt.ok ? `was answered: ${attempt.line}` : `failed: ${attempt.error}`}`)
      }
      if (e.verdict === 'forward') {
        expect(e.target, name).to.equal(`${VIP}:${k.port === 8080 || k.port === 443 ? 80 : k.port === 5300 ? 53 : k.port}`)
        expect(e.mapping, name).to.be.oneOf(['default/open', 'default/client-only', 'shop/far'])
        expect(e.reply?.interface, name).to.equal(k.dst === EXT_2 ? 'eth2' : 'eth1')
      } else {
        expect(e.target, name).to.equal(null)
        expect(e.mapping, name).to.equal(null)
      }
    }
    expect(mismatches).to.deep.equal([])
  })

  it('names the allow-list entry that admits a source, and the reason a stranger is dropped', async () => {
    const allowed = await explain('--src', CLIENT, '--dst', `${EXT_B}:80`)
    expect(allowed).to.include({verdict: 'forward', mapping: 'default/client-only', allowedSource: `${CLIENT}/32`})
    const dropped = await explain('--src', STRANGER, '--dst', `${EXT_B}:80/tcp`)
    expect(dropped.reason).to.equal(
      `${STRANGER} is not in the allowed sources of default/client-only (${CLIENT}/32) for ${EXT_B} tcp/80; dropped by ${backend.inputDropRule}`,
    )
    const invalid = await explain('--src', CLIENT, '--dst', `${EXT_C}:9000`)
    expect(invalid.reason).to.equal(
      `default/broken asks for ${EXT_C} tcp/9000 but is invalid: service "no-such-service" not found in namespace "default"; smartnat leaves the packet to the host's other rules`,
    )
  })
})
