import {expect} from 'chai'
import {explainMapping} from '../../src/lib/explain/mapping.js'
import {mappingFacts} from '../../src/lib/inspect/facts.js'
import {diffParts, driftOf, sharedDrift} from '../../src/lib/inspect/drift.js'
import type {StatePart} from '../../src/lib/backend/parts.js'
import {buildStatusReport, STATUS_EXIT, statusExitCode} from '../../src/lib/status/report.js'
import type {HostStatus} from '../../src/lib/status/host.js'
import {desiredState, inspect, permissionDenied, withoutRule} from './explain-fixture.js'

const WEB_RULE = '-A SNM-A-5b4665a2 -p tcp -m tcp --dport 80 -m comment --comment "default/web tcp/80" -j DNAT --to-destination 198.19.100.10:8080'
const HEALTHY_HOST: HostStatus = {ipForward: '1', tools: [], iptablesFlavour: 'nf_tables', lock: {path: '/run/x.lock', held: false, holder: null}, interfaces: [], problems: []}

const states = (facts: {namespace: string; name: string; state: string}[]) => Object.fromEntries(facts.map((f) => [`${f.namespace}/${f.name}`, f.state]))
const lines = (parts: StatePart[]) => parts.map((p) => `${p.where}: ${p.text}`)

describe('drift, told per Mapping', () => {
  it('a kernel holding exactly the desired state has no drift, and each Mapping its own state', async () => {
    const {inspection} = await inspect()
    expect(inspection.drift).to.deep.equal({missing: [], unexpected: []})
    expect(states(mappingFacts(inspection))).to.deep.equal({
      'default/broken': 'invalid',
      'default/remote': 'not-local',
      'default/web': 'configured',
      'shop/api': 'configured',
    })
    expect(mappingFacts(inspection).find((f) => f.name === 'broken')!.reason).to.equal('service "missing" not found in namespace "default"')
    expect(statusExitCode(buildStatusReport(inspection, HEALTHY_HOST))).to.equal(STATUS_EXIT.ok)
  })

  it('a DNAT rule removed by hand is missing for its Mapping only', async () => {
    const {inspection} = await inspect({state: withoutRule(desiredState(), 'nat', 'default/web tcp/80')})
    expect(lines(driftOf(inspection.drift!, 'default/web').missing)).to.deep.equal([`nat SNM-A-5b4665a2: ${WEB_RULE}`])
    expect(driftOf(inspection.drift!, 'shop/api')).to.deep.equal({missing: [], unexpected: []})
    const web = mappingFacts(inspection).find((f) => f.name === 'web')!
    expect(web.state).to.equal('drifted')
    expect(web.reason).to.equal('the kernel lacks 1 of its rules and set entries; the next sync repairs it')
    expect(web.rules).to.deep.equal([{address: '198.18.0.10', protocol: 'tcp', port: 80, target: '198.19.100.10:8080', inKernel: false, packets: null, bytes: null}])
    expect(states(mappingFacts(inspection))['shop/api']).to.equal('configured')
    expect(statusExitCode(buildStatusReport(inspection, HEALTHY_HOST))).to.equal(STATUS_EXIT.drift)
  })

  it('a missing allow-list entry belongs to the Mapping of its address and port', async () => {
    const state = desiredState()
    const allow = state.sets.find((s) => s.name === 'SNM-ALLOW')!
    allow.entries = allow.entries.filter((e) => e !== '198.18.2.10,udp:53,198.18.3.0/24')
    const {inspection} = await inspect({state})
    expect(inspection.drift!.missing.map((p) => [p.where, p.text, p.mappings])).to.deep.equal([['set SNM-ALLOW', '198.18.2.10,udp:53,198.18.3.0/24', ['shop/api']]])
  })

  it('a missing dispatch rule for an address concerns every Mapping on that address', async () => {
    const {inspection} = await inspect({state: withoutRule(desiredState(), 'nat', '-d 198.18.0.10/32')})
    expect(inspection.drift!.missing.map((p) => p.mappings)).to.deep.equal([['default/web', 'shop/api']])
    expect(states(mappingFacts(inspection))).to.include({'default/web': 'drifted', 'shop/api': 'drifted'})
  })

  it('rules of a Mapping that no longer exists show as a stale Mapping, named by their comment', async () => {
    const state = desiredState()
    const chain = state.tables.nat.chains.find((c) => c.name === 'SNM-A-ddceb996')!
    const stale = '-A SNM-A-ddceb996 -p tcp -m tcp --dport 22 -m comment --comment "default/old tcp/22" -j DNAT --to-destination 198.19.100.30:22'
    chain.rules.push(stale)
    state.sets.find((s) => s.name === 'SNM-ENDPOINTS')!.entries.push('198.18.2.10,tcp:22')
    const {inspection} = await inspect({state})
    const old = mappingFacts(inspection).find((f) => f.name === 'old')!
    expect(old).to.include({namespace: 'default', state: 'stale'})
    expect(old.drift.unexpected).to.deep.equal([`nat SNM-A-ddceb996: ${stale}`, 'set SNM-ENDPOINTS: 198.18.2.10,tcp:22'])
    expect(old.reason).to.equal('not a Mapping of the source, yet the kernel holds 2 of its rules and set entries')
  })

  it('drift in what every Mapping relies on is shared, and drifts no Mapping', async () => {
    const {inspection} = await inspect({state: withoutRule(desiredState(), 'nat', 'MASQUERADE')})
    expect(lines(sharedDrift(inspection.drift!).missing)).to.deep.equal(['nat SNM-POSTROUTING: -A SNM-POSTROUTING -m mark --mark 0x80000/0x80000 -j MASQUERADE'])
    expect(Object.values(states(mappingFacts(inspection)))).to.not.include('drifted')
    const report = buildStatusReport(inspection, HEALTHY_HOST)
    expect(report.shared.missing).to.have.length(1)
    expect(statusExitCode(report)).to.equal(STATUS_EXIT.drift)
  })

  it('compares as multisets: a rule present twice is drift', () => {
    const part: StatePart = {kind: 'rule', where: 'nat X', text: '-A X -j RETURN', mappings: []}
    expect(diffParts([part], [part, {...part}])).to.deep.equal({missing: [], unexpected: [part]})
    expect(diffParts([part, {...part}], [part])).to.deep.equal({missing: [part], unexpected: []})
  })

  it('counts packets and bytes of each Mapping from its DNAT rules', async () => {
    const counters = new Map([
      [`nat ${WEB_RULE}`, {packets: 7, bytes: 420}],
      ['nat -A SNM-A-5b4665a2 -p udp -m udp --dport 53 -m comment --comment "shop/api udp/53" -j DNAT --to-destination 198.19.100.20:5353', {packets: 2, bytes: 100}],
      ['nat -A SNM-A-ddceb996 -p udp -m udp --dport 53 -m comment --comment "shop/api udp/53" -j DNAT --to-destination 198.19.100.20:5353', {packets: 3, bytes: 150}],
    ])
    const {inspection} = await inspect({state: desiredState(), counters})
    const facts = mappingFacts(inspection)
    expect(facts.find((f) => f.name === 'web')).to.include({packets: 7, bytes: 420})
    expect(facts.find((f) => f.name === 'api')).to.include({packets: 5, bytes: 250})
    const explained = explainMapping(inspection, 'default/web')
    expect(explained.parts.find((p) => p.text === WEB_RULE)).to.deep.equal({kind: 'rule', where: 'nat SNM-A-5b4665a2', text: WEB_RULE, inKernel: true, packets: 7, bytes: 420})
  })

  it('without a readable kernel, programmed Mappings are unverified and the exit code says so', async () => {
    const {inspection} = await inspect({error: permissionDenied()})
    expect(inspection.drift).to.equal(undefined)
    expect(states(mappingFacts(inspection))).to.include({'default/web': 'unverified', 'default/broken': 'invalid'})
    const report = buildStatusReport(inspection, HEALTHY_HOST)
    expect(report.kernel).to.deep.equal({
      readable: false,
      installed: null,
      reason: 'reading kernel state: iptables-save failed: iptables-save exited with 4: iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)',
    })
    expect(statusExitCode(report)).to.equal(STATUS_EXIT.kernelUnreadable)
    expect(statusExitCode({...report, host: {...HEALTHY_HOST, problems: ['ip_forward off']}})).to.equal(STATUS_EXIT.prerequisites)
  })

  it('-n keeps one namespace', async () => {
    const {inspection} = await inspect()
    expect(buildStatusReport(inspection, HEALTHY_HOST, {namespace: 'shop'}).mappings.map((m) => m.name)).to.deep.equal(['api'])
  })
})

describe('explainMapping', () => {
  it('lists the rules and set entries that implement a Mapping, each checked against the kernel', async () => {
    const {inspection} = await inspect({state: withoutRule(desiredState(), 'nat', 'default/web tcp/80')})
    const e = explainMapping(inspection, 'default/web')
    expect(e.parts.map((p) => `${p.inKernel ? 'yes' : 'MISSING'} ${p.where}: ${p.text}`)).to.deep.equal([
      'yes nat SNM-PREROUTING: -A SNM-PREROUTING -d 198.18.0.10/32 -j SNM-A-5b4665a2',
      `MISSING nat SNM-A-5b4665a2: ${WEB_RULE}`,
      'yes nat: :SNM-A-5b4665a2',
      'yes set SNM-ALLOW: 198.18.0.10,tcp:80,198.18.1.2',
      'yes set SNM-ENDPOINTS: 198.18.0.10,tcp:80',
    ])
    expect(e.mapping).to.include({service: 'web', serviceVIP: '198.19.100.10', state: 'drifted'})
    expect(e.mapping.endpoints).to.deep.equal(['198.19.200.11', '198.19.200.12'])
  })

  it('an invalid Mapping has its reason and no rules', async () => {
    const {inspection} = await inspect()
    const e = explainMapping(inspection, 'default/broken')
    expect(e.mapping).to.include({state: 'invalid', reason: 'service "missing" not found in namespace "default"'})
    expect(e.parts).to.deep.equal([])
  })

  it('an unknown Mapping fails naming those of its namespace', async () => {
    const {inspection} = await inspect()
    expect(() => explainMapping(inspection, 'default/nope')).to.throw('mapping default/nope not found; in namespace default there are: default/broken, default/remote, default/web')
    expect(() => explainMapping(inspection, 'other/nope')).to.throw('mapping other/nope not found; known Mappings: default/broken, default/remote, default/web, shop/api')
  })
})
