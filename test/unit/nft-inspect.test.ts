import {expect} from 'chai'
import type {NftState} from '../../src/lib/backend/nftables/types.js'
import {inspectHost} from '../../src/lib/inspect/inspection.js'
import {driftOf, isClean} from '../../src/lib/inspect/drift.js'
import type {Backend} from '../../src/lib/backend/backend.js'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {mappingFacts} from '../../src/lib/inspect/facts.js'
import {explainPacket, parsePacketSpec} from '../../src/lib/explain/packet.js'
import {partKey} from '../../src/lib/backend/parts.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {SETTINGS, snapshot} from './explain-fixture.js'

const IP_ADDR = JSON.stringify([
  {ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.10', prefixlen: 24}]},
  {ifname: 'eth2', addr_info: [{family: 'inet', local: '198.18.2.10', prefixlen: 24}]},
])

/** The fixture host with the nftables backend, whose kernel holds what `alter` makes of the desired state. */
async function inspect(alter: (state: NftState) => void = () => {}) {
  const runner = new RecordingRunner((call) => (call.command === 'ip' && call.args.join(' ') === '-j -4 addr show' ? {stdout: IP_ADDR} : new Error(`unexpected command ${call.command}`)))
  const real = nftablesBackend(runner)
  let desired: NftState | undefined
  const backend: Backend<NftState> = {
    ...real,
    render: (model) => (desired = real.render(model)),
    read: async () => {
      const state = structuredClone(desired!)
      alter(state)
      return state
    },
  }
  return {inspection: await inspectHost({runner, backend, loadSnapshot: async () => snapshot()}, SETTINGS), backend}
}

const set = (state: NftState, name: string) => state.table!.sets.find((s) => s.name === name)!

describe('nftables backend under status and explain', () => {
  it('attributes map and set elements to their Mappings; chains, rules and routing serve every Mapping', async () => {
    const {inspection} = await inspect()
    expect(inspection.countsPackets).to.equal(false)
    expect(isClean(inspection.drift!)).to.equal(true)
    const web = inspection.desiredParts.filter((p) => p.mappings.includes('default/web')).map((p) => `${p.kind} ${p.where}: ${p.text}`)
    expect(web).to.deep.equal([
      'set-entry set allowed_32: 198.18.0.10 . tcp . 80 . 198.18.1.2 comment "default/web"',
      'map-entry map endpoints: 198.18.0.10 . tcp . 80 comment "default/web tcp/80" : 198.19.100.10 . 8080',
    ])
    const api = inspection.desiredParts.filter((p) => p.mappings.includes('shop/api'))
    expect(api.map((p) => p.endpoint).sort()).to.deep.equal(['198.18.0.10 udp/53', '198.18.0.10 udp/53', '198.18.2.10 udp/53', '198.18.2.10 udp/53'])
    const shared = inspection.desiredParts.filter((p) => p.mappings.length === 0)
    expect(new Set(shared.map((p) => p.kind))).to.deep.equal(new Set(['chain', 'rule', 'set', 'ip-rule', 'route']))
    expect(inspection.desiredParts.some((p) => p.counterKey !== undefined)).to.equal(false)
  })

  it('a deleted allow-list element is drift of its Mapping alone; packets are unknown, not zero', async () => {
    const {inspection} = await inspect((state) => {
      set(state, 'allowed_32').elements = set(state, 'allowed_32').elements.filter((e) => e.comment !== 'default/web')
    })
    expect(driftOf(inspection.drift!, 'default/web').missing.map(partKey)).to.deep.equal(['set-entry set allowed_32 198.18.0.10 . tcp . 80 . 198.18.1.2 comment "default/web"'])
    const facts = new Map(mappingFacts(inspection).map((f) => [`${f.namespace}/${f.name}`, f]))
    expect(facts.get('default/web')!.state).to.equal('drifted')
    expect(facts.get('shop/api')!.state).to.equal('configured')
    expect(facts.get('default/web')!.rules.map((r) => [r.inKernel, r.packets, r.bytes])).to.deep.equal([[true, null, null]])
    expect([facts.get('shop/api')!.packets, facts.get('shop/api')!.bytes]).to.deep.equal([null, null])
  })

  it('a missing endpoints element shows as not in the kernel; a leftover one names a stale Mapping', async () => {
    const {inspection} = await inspect((state) => {
      const endpoints = set(state, 'endpoints')
      endpoints.elements = endpoints.elements.filter((e) => e.comment !== 'default/web tcp/80')
      endpoints.elements.push({key: ['198.18.0.10', 'tcp', '81'], value: ['198.19.100.30', '81'], comment: 'default/gone tcp/81'})
    })
    const facts = new Map(mappingFacts(inspection).map((f) => [`${f.namespace}/${f.name}`, f]))
    expect(facts.get('default/web')!.rules.map((r) => r.inKernel)).to.deep.equal([false])
    expect(facts.get('default/gone')).to.include({state: 'stale'})
    expect(facts.get('default/gone')!.drift.unexpected).to.deep.equal(['map endpoints: 198.18.0.10 . tcp . 81 comment "default/gone tcp/81" : 198.19.100.30 . 81'])
  })

  it('explains packets with the nftables tracer, and follows the kernel where it differs', async () => {
    const clean = await inspect()
    const allowed = explainPacket(clean.inspection, clean.backend.inspect, parsePacketSpec('198.18.1.2', '198.18.0.10:80'))
    expect(allowed).to.include({verdict: 'forward', mapping: 'default/web', target: '198.19.100.10:8080', decidedBy: 'kernel', agree: true, allowedSource: '198.18.1.2/32'})
    expect(allowed.reply).to.include({interface: 'eth1', table: 7001})
    const stranger = explainPacket(clean.inspection, clean.backend.inspect, parsePacketSpec('198.18.1.3', '198.18.0.10:80'))
    expect(stranger.reason).to.equal(
      '198.18.1.3 is not in the allowed sources of default/web (198.18.1.2/32) for 198.18.0.10 tcp/80; dropped by ip daddr . meta l4proto . th dport @endpoints drop',
    )

    const drifted = await inspect((state) => {
      set(state, 'allowed_32').elements = set(state, 'allowed_32').elements.filter((e) => e.comment !== 'default/web')
    })
    const followed = explainPacket(drifted.inspection, drifted.backend.inspect, parsePacketSpec('198.18.1.2', '198.18.0.10:80'))
    expect(followed).to.include({verdict: 'drop', agree: false, decidedBy: 'kernel'})
    expect(followed.desired).to.include({verdict: 'forward', target: '198.19.100.10:8080'})
  })
})
