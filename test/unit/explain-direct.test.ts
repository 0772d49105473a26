/**
 * status and explain of mode-direct Mappings, on an inspection built by hand and traces a test
 * hands over: what the backends' tracers return for a group or a refusal is their business.
 */
import {expect} from 'chai'

import type {Trace, TracePacket, TraceStep} from '../../src/lib/backend/trace-packet.js'
import {mappingExplanationLines, packetExplanationLines} from '../../src/lib/explain/format.js'
import {explainMapping} from '../../src/lib/explain/mapping.js'
import {explainPacket, parsePacketSpec} from '../../src/lib/explain/packet.js'
import {memberRoutes, routeAdvice} from '../../src/lib/explain/routes.js'
import {outputPaint} from '../../src/lib/format/columns.js'
import {mappingFacts} from '../../src/lib/inspect/facts.js'
import type {Inspection} from '../../src/lib/inspect/inspection.js'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL, type EndpointSliceResource, type MappingResource, type ServiceResource} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {statusLines} from '../../src/lib/status/format.js'
import {buildStatusReport} from '../../src/lib/status/report.js'
import type {HostStatus} from '../../src/lib/status/host.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {syncLines} from '../../src/cli/verdicts.js'
import {dryRunOutput} from '../../src/lib/app/sync-output.js'

const EXT = '198.18.0.10'
const host: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: EXT as Ipv4, prefixLength: 24}]}]}
const plain = outputPaint({isTTY: false}, {})

function mapping(name: string, serviceName: string, port: number): MappingResource {
  return {
    apiVersion: MAPPING_API_VERSION,
    kind: 'Mapping',
    metadata: {namespace: 'default', name},
    spec: {addresses: [EXT], serviceName, mode: 'direct', allowedSources: ['198.18.1.0/24'], ports: [{port, servicePort: 80}]},
  }
}

function service(name: string, spec: NonNullable<ServiceResource['spec']> = {}): ServiceResource {
  return {metadata: {namespace: 'default', name}, spec: {clusterIP: '198.19.100.10', ports: [{name: 'http', port: 80}], ...spec}}
}

function slice(serviceName: string, endpoints: {ip: string; ready: boolean; terminating?: boolean}[]): EndpointSliceResource {
  return {
    metadata: {namespace: 'default', name: `${serviceName}-1`, labels: {[SERVICE_NAME_LABEL]: serviceName}},
    addressType: 'IPv4',
    ports: [{name: 'http', port: 8080}],
    endpoints: endpoints.map(({ip, ready, terminating}) => ({addresses: [ip], conditions: {ready, serving: true, terminating: terminating ?? false}})),
  }
}

/** web: two ready pods, ClientIP affinity; empty: no endpoint at all; draining: only a terminating one. */
function inspection(): Inspection<unknown> {
  const snapshot: Snapshot = {
    mappings: [mapping('web', 'web', 80), mapping('empty', 'empty', 81), mapping('draining', 'draining', 82)],
    services: [service('web', {sessionAffinity: 'ClientIP'}), service('empty', {clusterIP: 'None'}), service('draining')],
    endpointSlices: [
      slice('web', [
        {ip: '198.19.200.12', ready: true},
        {ip: '198.19.200.11', ready: true},
        {ip: '198.19.200.13', ready: false},
      ]),
      slice('draining', [{ip: '198.19.200.21', ready: false, terminating: true}]),
    ],
  }
  return {
    settings: {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: /^eth1$/},
    backend: 'nftables',
    countsPackets: false,
    snapshot,
    host,
    plan: plan(snapshot, host, DEFAULT_PLAN_OPTIONS),
    desired: 'desired',
    desiredParts: [],
    kernel: {readable: false, reason: 'permission denied'},
  }
}

const HOST: HostStatus = {ipForward: '1', tools: [], iptablesFlavour: null, lock: {path: '/run/smartnat/smartnat.lock', held: false, holder: null}, interfaces: [], problems: []}

describe('status of mode-direct Mappings', () => {
  it('counts the endpoints in use from the groups, and says which ports refuse and which serve terminating pods', () => {
    const facts = new Map(mappingFacts(inspection()).map((f) => [f.name, f]))
    const web = facts.get('web')!
    expect(web).to.include({mode: 'direct', reason: null, serviceVIP: '198.19.100.10'})
    expect(web.endpoints).to.deep.equal(['198.19.200.11', '198.19.200.12'])
    expect(web.groups).to.deep.equal([{id: 'default/web tcp/80', members: ['198.19.200.11:8080', '198.19.200.12:8080'], terminating: false, affinitySeconds: 10800}])
    expect(web.rules.map((r) => r.target)).to.deep.equal(['group default/web tcp/80'])
    expect(facts.get('empty')).to.include({mode: 'direct', serviceVIP: null, reason: 'no ready endpoints for port 81; new connections are refused'})
    expect(facts.get('empty')!.endpoints).to.deep.equal([])
    expect(facts.get('draining')).to.include({reason: 'no ready endpoint for Service port tcp/80; new connections go to serving terminating ones'})
    expect(facts.get('draining')!.endpoints).to.deep.equal(['198.19.200.21'])
  })

  it('shows the mode and the endpoint count in the table', () => {
    const lines = statusLines(buildStatusReport(inspection(), HOST), {paint: plain, wide: false})
    const rows = lines.filter((l) => l.startsWith('NAMESPACE/NAME') || /^default\/\S+ {2}/.test(l)).map((l) => l.split(/ {2,}/).slice(0, 6))
    expect(rows).to.deep.equal([
      ['NAMESPACE/NAME', 'ADDRESSES', 'PORTS', 'MODE', 'VIP', 'READY'],
      ['default/draining', EXT, 'tcp/82->draining:80', 'direct', '198.19.100.10', '1'],
      ['default/empty', EXT, 'tcp/81->empty:80', 'direct', '-', '0'],
      ['default/web', EXT, 'tcp/80->web:80', 'direct', '198.19.100.10', '2'],
    ])
    expect(lines).to.include('default/empty: unverified: no ready endpoints for port 81; new connections are refused')
  })
})

describe('explain of a mode-direct Mapping', () => {
  it('lists its groups with their members, and each member’s route', () => {
    const e = {
      ...explainMapping(inspection(), 'default/web'),
      routes: [
        {ip: '198.19.200.11', dev: 'cluster0', gateway: '198.18.4.2', error: null, external: false},
        {ip: '198.19.200.12', dev: null, gateway: null, error: 'Network is unreachable', external: false},
      ],
    }
    expect(mappingExplanationLines(e, plain).slice(0, 11)).to.deep.equal([
      'Mapping default/web: unverified',
      '  Mode       direct',
      '  Service    default/web',
      '  VIP        198.19.100.10',
      '  Endpoints  2 ready: 198.19.200.11, 198.19.200.12',
      '  Groups     default/web tcp/80 -> 198.19.200.11:8080, 198.19.200.12:8080 (ClientIP affinity 10800 s)',
      '  Addresses  198.18.0.10',
      '  Sources    198.18.1.0/24',
      '  Ports      tcp/80 -> web:80',
      '  Routes     198.19.200.11 via 198.18.4.2 dev cluster0',
      '             198.19.200.12 no route (Network is unreachable)',
    ])
    expect(mappingExplanationLines(e, plain)).to.include(
      'warning: no route to 198.19.200.12: mode direct needs a route from this host to the pod network, through the cluster (e.g. ip route add POD-CIDR via NODE-IP)',
    )
  })

  it('says which route is needed when the routes could not be looked up, and that an empty group refuses', () => {
    const e = {...explainMapping(inspection(), 'default/empty'), routeError: 'ip not found'}
    const lines = mappingExplanationLines(e, plain)
    expect(lines).to.include('  Groups     default/empty tcp/80 -> none: new connections are refused')
    expect(lines).to.include(
      '  Routes     not checked (lookup failed: ip not found); this host needs a route to each member (the pod network), through the cluster; check with `ip route get MEMBER-IP`',
    )
  })
})

describe('explain of a packet to a mode-direct Mapping', () => {
  const steps: TraceStep[] = [{table: 'nat', chain: 'nat_allowed', rule: 'ip daddr . meta l4proto . th dport vmap @direct'}]
  const marks = {nfmark: 0x80000, ctmark: 0x100000, masquerade: true, egress: false, interfaceIndex: 1}
  const traced = (trace: Trace) => ({trace: (_state: unknown, _packet: TracePacket) => trace})

  it('forwards to the group, names its members and how one is picked', () => {
    const members = ['198.19.200.11:8080', '198.19.200.12:8080']
    const trace: Trace = {verdict: 'group', group: 'default/web tcp/80', members, affinitySeconds: 10800, mapping: 'default/web', masqueraded: true, steps, marks}
    const e = {
      ...explainPacket(inspection(), traced(trace), parsePacketSpec('198.18.1.2', `${EXT}:80`)),
      routes: [{ip: '198.19.200.11', dev: 'eth1', gateway: '198.18.0.1', error: null, external: true}],
    }
    expect(e).to.include({verdict: 'forward', mapping: 'default/web', target: 'group default/web tcp/80', allowedSource: '198.18.1.0/24'})
    expect(e.group).to.deep.equal({id: 'default/web tcp/80', members, affinitySeconds: 10800})
    expect(e.reason).to.equal(
      '198.18.1.2 is in allowedSources entry 198.18.1.0/24 of default/web; DNAT to one of the 2 endpoints of group default/web tcp/80, picked at random, then kept for the client 10800 s (ClientIP affinity), masqueraded',
    )
    const lines = packetExplanationLines(e, plain)
    expect(lines.slice(0, 3)).to.deep.equal([`packet 198.18.1.2 -> ${EXT}:80/tcp in eth1`, 'verdict forward -> group default/web tcp/80 by default/web (desired rules)', `why     ${e.reason}`])
    expect(lines).to.include('members 198.19.200.11:8080, 198.19.200.12:8080')
    expect(lines).to.include('routes  198.19.200.11 via 198.18.0.1 dev eth1')
    expect(lines).to.include(
      'warning: 198.19.200.11 (dev eth1) leave by an external interface, most likely by the default route: mode direct needs a route from this host to the pod network, through the cluster (e.g. ip route add POD-CIDR via NODE-IP)',
    )
  })

  it('a port without endpoints is refused, and says with what', () => {
    const rule = 'ct mark & 0x0ff00000 != 0x00000000 ip daddr . meta l4proto . th dport @unserved reject with tcp reset'
    const trace: Trace = {verdict: 'reject', rule, with: 'tcp-reset', steps, marks}
    const e = explainPacket(inspection(), traced(trace), parsePacketSpec('198.18.1.2', `${EXT}:81`))
    expect(e).to.include({verdict: 'reject', mapping: null, target: null, group: null, reply: null})
    expect(e.desired).to.include({rejectWith: 'tcp-reset', dropRule: rule})
    expect(e.reason).to.equal(`default/empty maps ${EXT} tcp/81 in mode direct, but its Service port has no ready or serving endpoint: new connections are refused with a TCP reset (${rule})`)
    expect(packetExplanationLines(e, plain)[1]).to.equal('verdict reject (desired rules)')
  })
})

describe('routes to the members of a group', () => {
  it('asks the kernel once per address, and tells a missing route and one leaving by an external interface', async () => {
    const runner = new RecordingRunner((call) => {
      const ip = call.args.at(-1)
      if (ip === '198.19.200.11') return {stdout: '[{"dst":"198.19.200.11","gateway":"198.18.4.2","dev":"cluster0","prefsrc":"198.18.4.1","flags":[],"uid":0,"cache":[]}]'}
      if (ip === '198.19.200.12') return {stdout: '[{"dst":"198.19.200.12","gateway":"198.18.0.1","dev":"eth1","flags":[],"uid":0,"cache":[]}]'}
      return {exitCode: 2, stderr: 'RTNETLINK answers: Network is unreachable\n'}
    })
    const routes = await memberRoutes(runner, ['198.19.200.12:8080', '198.19.200.11:8080', '198.19.200.13:8080', '198.19.200.11:9090'], host)
    expect(runner.calls.map((c) => [c.command, ...c.args].join(' '))).to.deep.equal(['198.19.200.11', '198.19.200.12', '198.19.200.13'].map((ip) => `ip -4 -j route get ${ip}`))
    expect(routes).to.deep.equal([
      {ip: '198.19.200.11', dev: 'cluster0', gateway: '198.18.4.2', error: null, external: false},
      {ip: '198.19.200.12', dev: 'eth1', gateway: '198.18.0.1', error: null, external: true},
      {ip: '198.19.200.13', dev: null, gateway: null, error: 'Network is unreachable', external: false},
    ])
    expect(routeAdvice(routes.slice(0, 1))).to.equal(null)
  })

  it('fails naming the address when ip itself fails', async () => {
    const runner = new RecordingRunner(() => ({exitCode: 1, stderr: 'Object "route" is unknown'}))
    const error = await memberRoutes(runner, ['198.19.200.11:8080'], host).catch((e: unknown) => e)
    expect(error).to.be.an('error').with.property('message', 'route to 198.19.200.11: ip -4 -j route get 198.19.200.11 exited with 1: Object "route" is unknown')
  })
})

describe('sync output of mode-direct Mappings', () => {
  it('says which ports refuse new connections, for cron and for --json', () => {
    const output = dryRunOutput({plan: inspection().plan, payloads: []})
    expect(output.mappings.map((m) => m.unservedPorts)).to.deep.equal([undefined, [{protocol: 'tcp', port: 81}], undefined])
    const lines = syncLines(output).map((l) => l.replaceAll(new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, 'g'), ''))
    expect(lines).to.include('default/empty     configured on 198.18.0.10; no ready endpoints for port 81; new connections are refused')
  })
})
