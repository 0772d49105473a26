import {expect} from 'chai'
import {elementParts, printElement} from '../../src/lib/backend/nftables/syntax.js'
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
import type {Snapshot} from '../../src/lib/plan/model.js'
import {groupChainName} from '../../src/lib/backend/nftables/names.js'
import {nftParts} from '../../src/lib/backend/nftables/parts.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {directModel} from './direct-model-fixture.js'

const IP_ADDR = JSON.stringify([
  {ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.10', prefixlen: 24}]},
  {ifname: 'eth2', addr_info: [{family: 'inet', local: '198.18.2.10', prefixlen: 24}]},
])

/** The fixture host with the nftables backend, whose kernel holds what `alter` makes of the desired state. */
async function inspect(alter: (state: NftState) => void = () => {}, source: () => Snapshot = snapshot) {
  const runner = new RecordingRunner((call) => (call.command === 'ip' && call.args.join(' ') === '-j -4 addr show' ? {stdout: IP_ADDR} : new Error(`unexpected command ${call.command}`)))
  const real = nftablesBackend(runner)
  // The kernel is read while the host is planned: it holds the desired state once the plan is rendered.
  let rendered!: (state: NftState) => void
  const desired = new Promise<NftState>((resolve) => (rendered = resolve))
  const backend: Backend<NftState> = {
    ...real,
    render: (model) => {
      const state = real.render(model)
      rendered(state)
      return state
    },
    read: async () => {
      const state = structuredClone(await desired)
      alter(state)
      return state
    },
  }
  return {inspection: await inspectHost({runner, backend, loadSnapshot: async () => source()}, SETTINGS), backend}
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
      set(state, 'allowed_32').elements = set(state, 'allowed_32').elements.filter((e) => !e.endsWith(' comment "default/web"'))
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
      endpoints.elements = endpoints.elements.filter((e) => elementParts(endpoints, e).comment !== 'default/web tcp/80')
      endpoints.elements.push(printElement(endpoints, {key: ['198.18.0.10', 'tcp', '81'], value: ['198.19.100.30', '81'], comment: 'default/gone tcp/81'}))
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
      set(state, 'allowed_32').elements = set(state, 'allowed_32').elements.filter((e) => !e.endsWith(' comment "default/web"'))
    })
    const followed = explainPacket(drifted.inspection, drifted.backend.inspect, parsePacketSpec('198.18.1.2', '198.18.0.10:80'))
    expect(followed).to.include({verdict: 'drop', agree: false, decidedBy: 'kernel'})
    expect(followed.desired).to.include({verdict: 'forward', target: '198.19.100.10:8080'})
  })
})

/** The fixture plus `lab/direct` in mode direct: 198.18.2.10 tcp/80 to web's two pods (named port), udp/53 to none, ClientIP affinity. */
function directSnapshot(): Snapshot {
  const base = snapshot()
  base.mappings.push({
    apiVersion: 'smartnat.aureacentral.com/v1alpha1',
    kind: 'Mapping',
    metadata: {namespace: 'lab', name: 'direct', creationTimestamp: '2025-01-01T00:00:00Z'},
    spec: {addresses: ['198.18.2.10'], serviceName: 'web', mode: 'direct', ports: [{port: 80}, {port: 53, protocol: 'udp'}]},
  })
  base.services.push({
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {namespace: 'lab', name: 'web'},
    spec: {
      type: 'ClusterIP',
      clusterIP: 'None',
      sessionAffinity: 'ClientIP',
      ports: [
        {name: 'http', port: 80, protocol: 'TCP'},
        {name: 'dns', port: 53, protocol: 'UDP'},
      ],
    },
  })
  base.endpointSlices.push({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {namespace: 'lab', name: 'web-x', labels: {'kubernetes.io/service-name': 'web'}},
    addressType: 'IPv4',
    endpoints: ['198.19.200.41', '198.19.200.42'].map((ip) => ({addresses: [ip], conditions: {ready: true}})),
    ports: [{name: 'http', port: 8080, protocol: 'TCP'}],
  })
  return base
}

describe('nftables backend under status and explain, mode direct', () => {
  const group = groupChainName('lab/direct tcp/80')

  it('attributes group and member chains, affinity sets and the direct elements to their Mapping, in sync after apply', async () => {
    const {inspection} = await inspect(() => {}, directSnapshot)
    expect(isClean(inspection.drift!)).to.equal(true)
    const parts = inspection.desiredParts.filter((p) => p.mappings.includes('lab/direct'))
    const kinds = parts.map((p) => `${p.kind} ${p.where.replace(/_[0-9a-f]{16}/g, '_H')}`)
    // The group with affinity and its two members; the empty group has no chain.
    expect(kinds.filter((k) => k.startsWith('chain ') || k.startsWith('set table'))).to.deep.equal([
      'chain table ip smartnat',
      'chain table ip smartnat',
      'chain table ip smartnat',
      'set table ip smartnat',
      'set table ip smartnat',
    ])
    expect(kinds.filter((k) => k.startsWith('rule'))).to.deep.equal(['rule chain group_H', 'rule chain group_H', 'rule chain group_H', 'rule chain member_H', 'rule chain member_H', 'rule chain member_H', 'rule chain member_H'])
    // udp/53 has no member: it is in no verdict map, only refused in input.
    expect(parts.filter((p) => p.kind === 'map-entry').map((p) => [p.where, p.endpoint])).to.deep.equal([['map direct', '198.18.2.10 tcp/80']])
    expect(parts.filter((p) => p.kind === 'set-entry').map((p) => p.where)).to.have.members(['set allowed_0', 'set allowed_0', 'set direct_endpoints', 'set direct_endpoints', 'set unserved'])
    const shared = inspection.desiredParts.filter((p) => p.mappings.length === 0 && p.kind === 'rule').map((p) => p.text)
    expect(shared).to.include('ip daddr . meta l4proto . th dport vmap @direct')
    expect(shared).to.include('ct mark & 0x0ff00000 != 0x00000000 ip daddr . meta l4proto . th dport @unserved meta l4proto tcp reject with tcp reset')
    const output = inspection.desiredParts.filter((p) => p.where === 'chain mangle_output' || p.text.startsWith('chain mangle_output '))
    expect(output.map((p) => [p.kind, p.mappings])).to.deep.equal([['chain', []], ['rule', []]])
    const facts = new Map(mappingFacts(inspection).map((f) => [`${f.namespace}/${f.name}`, f]))
    expect(facts.get('lab/direct')!.state).to.equal('configured')
  })

  it('a deleted group chain is drift of its Mapping alone: the chain, its rules and the elements leading to it are missing', async () => {
    const {inspection} = await inspect((state) => {
      // nft deletes a chain only once nothing leads to it: the direct map's element goes first.
      const direct = set(state, 'direct')
      direct.elements = direct.elements.filter((e) => elementParts(direct, e).value?.[0] !== `goto ${group}`)
      state.table!.chains = state.table!.chains.filter((c) => c.name !== group)
    }, directSnapshot)
    const drift = driftOf(inspection.drift!, 'lab/direct')
    expect(drift.missing.map((p) => `${p.kind} ${p.where}`)).to.deep.equal([
      'chain table ip smartnat',
      `rule chain ${group}`,
      `rule chain ${group}`,
      `rule chain ${group}`,
      'map-entry map direct',
    ])
    expect(drift.unexpected).to.deep.equal([])
    const facts = new Map(mappingFacts(inspection).map((f) => [`${f.namespace}/${f.name}`, f]))
    expect(facts.get('lab/direct')!.state).to.equal('drifted')
    expect(facts.get('default/web')!.state).to.equal('configured')
  })

  it('attributes targets elements to the Mapping of their endpoint, a stale one by its comment; the pick chains serve every Mapping', () => {
    const model = directModel()
    const state = renderNftables(model)
    set(state, 'targets').elements.push(printElement(set(state, 'targets'), {key: ['198.18.0.10', 'tcp', '81', '0'], value: ['10.244.9.9', '80'], comment: 'lab/gone tcp/81'}))
    const parts = nftParts(state, model)
    const targets = parts.filter((p) => p.where === 'map targets')
    expect(targets.map((p) => [p.endpoint, p.mappings])).to.have.deep.members([
      ...['198.18.0.10', '198.18.2.10'].flatMap((address) => [0, 1, 2].map(() => [`${address} tcp/8080`, ['shop/api']])),
      ['198.18.0.10 tcp/81', ['lab/gone']],
    ])
    expect(parts.filter((p) => p.where === 'chain pick_3' || p.text.startsWith('chain pick_3')).map((p) => p.mappings)).to.deep.equal([[], []])
  })

  it('names a Mapping the source no longer has by the comments of its direct elements', async () => {
    const {inspection} = await inspect((state) => {
      set(state, 'direct').elements.push(printElement(set(state, 'direct'), {key: ['198.18.0.10', 'tcp', '81'], value: [`goto ${group}`], comment: 'lab/gone tcp/81'}))
    }, directSnapshot)
    const facts = new Map(mappingFacts(inspection).map((f) => [`${f.namespace}/${f.name}`, f]))
    expect(facts.get('lab/gone')).to.include({state: 'stale'})
  })
})
