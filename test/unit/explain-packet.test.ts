import {expect} from 'chai'
import {explainPacket, parsePacketSpec, type PacketExplanation} from '../../src/lib/explain/packet.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {SETTINGS, desiredState, inspect, permissionDenied, withoutRule, type KernelFixture} from './explain-fixture.js'

async function explain(src: string, dst: string, kernel?: KernelFixture, inInterface?: string): Promise<PacketExplanation> {
  const {inspection, backend} = await inspect(kernel)
  return explainPacket(inspection, backend.inspect, parsePacketSpec(src, dst, inInterface))
}

const verdictOf = (e: Pick<PacketExplanation, 'verdict' | 'mapping' | 'target'>) => ({verdict: e.verdict, mapping: e.mapping, target: e.target})

describe('explainPacket', () => {
  it('an allowed source is forwarded: Mapping, allow-list entry, DNAT target and reply path', async () => {
    const e = await explain('198.18.1.2', '198.18.0.10:80')
    expect(verdictOf(e)).to.deep.equal({verdict: 'forward', mapping: 'default/web', target: '198.19.100.10:8080'})
    expect(e).to.include({decidedBy: 'kernel', agree: true, allowedSource: '198.18.1.2/32'})
    expect(e.packet).to.deep.equal({src: '198.18.1.2', dst: '198.18.0.10:80', protocol: 'tcp', inInterface: 'eth1'})
    expect(e.reply).to.deep.equal({interface: 'eth1', mark: '0x100000', table: 7001, gateway: '198.18.0.1', inKernel: true})
    expect(e.reason).to.equal('198.18.1.2 is in allowedSources entry 198.18.1.2/32 of default/web; DNAT to 198.19.100.10:8080, masqueraded')
    expect(e.warnings).to.deep.equal([])
    expect(e.steps.map((s) => `${s.table}/${s.chain}`)).to.deep.equal([
      'mangle/PREROUTING',
      'nat/PREROUTING',
      'nat/SNM-PREROUTING',
      'nat/SNM-PREROUTING',
      'nat/SNM-PREROUTING',
      'nat/SNM-A-5b4665a2',
      'filter/FORWARD',
      'filter/SNM-FORWARD',
      'nat/POSTROUTING',
      'nat/SNM-POSTROUTING',
    ])
  })

  it('names the HA pair\'s cluster-side address a forwarded connection is masqueraded to', async () => {
    const settings = {...SETTINGS, plan: {...SETTINGS.plan, clusterAddress: '198.18.4.100' as Ipv4}}
    const {inspection, backend} = await inspect({state: desiredState(settings)}, settings)
    const e = explainPacket(inspection, backend.inspect, parsePacketSpec('198.18.1.2', '198.18.0.10:80'))
    expect(e).to.include({agree: true})
    expect(e.reason).to.equal('198.18.1.2 is in allowedSources entry 198.18.1.2/32 of default/web; DNAT to 198.19.100.10:8080, masqueraded to 198.18.4.100')
  })

  it('the same port on the second interface marks the connection for that interface’s table', async () => {
    const e = await explain('198.18.3.2', '198.18.2.10:53/udp')
    expect(verdictOf(e)).to.deep.equal({verdict: 'forward', mapping: 'shop/api', target: '198.19.100.20:5353'})
    expect(e.reply).to.deep.equal({interface: 'eth2', mark: '0x200000', table: 7002, gateway: '198.18.2.1', inKernel: true})
  })

  it('a source outside the allow-list is dropped, and the reason lists the allowed sources', async () => {
    const e = await explain('198.18.1.3', '198.18.0.10:80/tcp')
    expect(verdictOf(e)).to.deep.equal({verdict: 'drop', mapping: null, target: null})
    expect(e.reason).to.equal(
      '198.18.1.3 is not in the allowed sources of default/web (198.18.1.2/32) for 198.18.0.10 tcp/80; dropped by -A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP',
    )
    expect(e.reply).to.equal(null)
  })

  it('an unmapped port is unmatched, naming what is mapped on that address', async () => {
    const e = await explain('198.18.1.2', '198.18.0.10:22')
    expect(verdictOf(e)).to.deep.equal({verdict: 'unmatched', mapping: null, target: null})
    expect(e.reason).to.equal("no Mapping maps tcp/22 on 198.18.0.10 (mapped there: tcp/80, udp/53); smartnat leaves the packet to the host's other rules")
  })

  it('a port only an invalid Mapping asks for is unmatched, with the Mapping’s reason', async () => {
    const e = await explain('198.18.1.2', '198.18.0.10:443')
    expect(e.verdict).to.equal('unmatched')
    expect(e.reason).to.equal(
      'default/broken asks for 198.18.0.10 tcp/443 but is invalid: service "missing" not found in namespace "default"; smartnat leaves the packet to the host\'s other rules',
    )
  })

  it('a port only an invalid Mapping was allocated is unmatched, with the Mapping’s reason', async () => {
    const dynamic = {
      apiVersion: 'smartnat.aureacentral.com/v1alpha1',
      kind: 'Mapping',
      metadata: {namespace: 'default', name: 'dynamic', creationTimestamp: '2025-01-01T00:00:00Z'},
      spec: {addressPool: 'edge', serviceName: 'missing', ports: [{servicePort: 80}]},
      status: {allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}},
    }
    const {inspection, backend} = await inspect(undefined, undefined, [dynamic])
    const e = explainPacket(inspection, backend.inspect, parsePacketSpec('198.18.1.2', '198.18.0.10:30000'))
    expect(e.reason).to.equal(
      'default/dynamic asks for 198.18.0.10 tcp/30000 but is invalid: service "missing" not found in namespace "default"; smartnat leaves the packet to the host\'s other rules',
    )
  })

  it('a port only a Mapping being deleted asks for is unmatched, saying it is being deleted', async () => {
    const {inspection, backend} = await inspect()
    const since = '2026-01-02T03:04:05Z'
    inspection.plan.verdicts = inspection.plan.verdicts.map((v) =>
      v.name === 'broken' ? {...v, invalid: `being deleted since ${since}; no longer served`, deleting: since} : v,
    )
    const e = await explainPacket(inspection, backend.inspect, parsePacketSpec('198.18.1.2', '198.18.0.10:443'))
    expect(e.reason).to.equal(
      `default/broken asks for 198.18.0.10 tcp/443 but is being deleted since ${since}; no longer served; smartnat leaves the packet to the host's other rules`,
    )
  })

  it('an address that is not on this host is unmatched and traced without an input interface', async () => {
    const e = await explain('198.18.1.2', '198.18.9.9:8080')
    expect(e.verdict).to.equal('unmatched')
    expect(e.packet.inInterface).to.equal(null)
    expect(e.reason).to.equal("default/remote asks for 198.18.9.9 tcp/8080, but 198.18.9.9 is on none of this host's external interfaces; smartnat leaves the packet to the host's other rules")
    expect(e.warnings).to.deep.equal(["198.18.9.9 is on none of this host's external interfaces; traced without an input interface"])
  })

  it('when the kernel lacks an allow-list entry it says so and follows the kernel', async () => {
    const state = desiredState()
    const allow = state.sets.find((s) => s.name === 'SNM-ALLOW')!
    allow.entries = allow.entries.filter((e) => !e.startsWith('198.18.0.10,tcp:80,'))
    const e = await explain('198.18.1.2', '198.18.0.10:80', {state})
    expect(verdictOf(e)).to.deep.equal({verdict: 'drop', mapping: null, target: null})
    expect(verdictOf(e.desired)).to.deep.equal({verdict: 'forward', mapping: 'default/web', target: '198.19.100.10:8080'})
    expect(e).to.include({agree: false, decidedBy: 'kernel'})
    expect(e.warnings).to.deep.equal([
      "the kernel's rules disagree with the desired state: desired forward to 198.19.100.10:8080 (default/web), kernel drop; the packet follows the kernel",
    ])
    expect(e.reason).to.equal(
      '198.18.1.2 is allowed by 198.18.1.2/32 of default/web, but the kernel lacks its rules and drops it; the kernel differs from the desired state, run `smartnat sync` to repair it',
    )
  })

  it('a reply table missing from the kernel shows in the reply path', async () => {
    const state = desiredState()
    state.ipRules = state.ipRules.filter((r) => r.table !== 7001)
    const e = await explain('198.18.1.2', '198.18.0.10:80', {state})
    expect(e.verdict).to.equal('forward')
    expect(e.reply).to.include({table: 7001, inKernel: false})
  })

  it('a kernel that cannot be read leaves the desired rules, with a warning', async () => {
    const e = await explain('198.18.1.2', '198.18.0.10:80', {error: permissionDenied()})
    expect(verdictOf(e)).to.deep.equal({verdict: 'forward', mapping: 'default/web', target: '198.19.100.10:8080'})
    expect(e).to.include({decidedBy: 'desired', kernel: null, agree: null})
    expect(e.reply).to.include({inKernel: null})
    expect(e.warnings).to.deep.equal([
      "cannot read the kernel's rules (reading kernel state: iptables-save failed: iptables-save exited with 4: iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)); showing the desired rules only",
    ])
  })

  it('a kernel rule the tracer does not know is a warning, not a crash', async () => {
    const state = withoutRule(desiredState(), 'nat', 'MASQUERADE')
    state.tables.nat.chains.find((c) => c.name === 'SNM-POSTROUTING')!.rules.push('-A SNM-POSTROUTING -s 198.18.1.0/24 -j RETURN')
    const e = await explain('198.18.1.2', '198.18.0.10:80', {state})
    expect(e.decidedBy).to.equal('desired')
    expect(e.warnings[0]).to.match(/^cannot trace the kernel's rules: unknown rule shape \(option -s\): -A SNM-POSTROUTING -s 198\.18\.1\.0\/24 -j RETURN; showing the desired rules only$/)
  })

  it('an explicit input interface is used as given', async () => {
    const e = await explain('198.18.1.2', '198.18.0.10:80', undefined, 'eth2')
    expect(e.packet.inInterface).to.equal('eth2')
    expect(e.reply).to.include({interface: 'eth2', table: 7002})
  })

  it('keeps a stable JSON shape', async () => {
    const e = await explain('198.18.1.2', '198.18.0.10:80')
    expect(Object.keys(e)).to.deep.equal(['packet', 'verdict', 'mapping', 'target', 'group', 'decidedBy', 'allowedSource', 'reason', 'reply', 'steps', 'desired', 'kernel', 'agree', 'warnings', 'routes', 'routeError'])
    expect(Object.keys(e.desired)).to.deep.equal(['verdict', 'mapping', 'target', 'masquerade', 'dropRule', 'group', 'rejectWith', 'steps'])
    expect(Object.keys(e.kernel!)).to.deep.equal(Object.keys(e.desired))
    expect(Object.keys(e.reply!)).to.deep.equal(['interface', 'mark', 'table', 'gateway', 'inKernel'])
    expect(Object.keys(e.steps[0]!)).to.deep.equal(['table', 'chain', 'rule'])
    expect(JSON.parse(JSON.stringify(e))).to.deep.equal(e)
  })
})

describe('parsePacketSpec', () => {
  const cases: {src: string; dst: string; want: string}[] = [
    {src: '198.18.1.2', dst: '198.18.0.10:80', want: '{"src":"198.18.1.2","dst":"198.18.0.10","port":80,"protocol":"tcp"}'},
    {src: '198.18.1.2', dst: '198.18.0.10:53/UDP', want: '{"src":"198.18.1.2","dst":"198.18.0.10","port":53,"protocol":"udp"}'},
    {src: '198.18.1', dst: '198.18.0.10:80', want: '--src "198.18.1": not an IPv4 address'},
    {src: '198.18.1.2', dst: '198.18.0.10', want: '--dst "198.18.0.10": expected IP:PORT or IP:PORT/tcp or IP:PORT/udp'},
    {src: '198.18.1.2', dst: '198.18.0.300:80', want: '--dst "198.18.0.300:80": "198.18.0.300" is not an IPv4 address'},
    {src: '198.18.1.2', dst: '198.18.0.10:0', want: '--dst "198.18.0.10:0": port must be 1..65535'},
    {src: '198.18.1.2', dst: '198.18.0.10:65536', want: '--dst "198.18.0.10:65536": port must be 1..65535'},
    {src: '198.18.1.2', dst: '198.18.0.10:80/sctp', want: '--dst "198.18.0.10:80/sctp": protocol must be tcp or udp'},
  ]
  for (const {src, dst, want} of cases) {
    it(`${src} ${dst}`, () => {
      let got: string
      try {
        got = JSON.stringify(parsePacketSpec(src, dst))
      } catch (error) {
        got = (error as Error).message
      }
      expect(got).to.equal(want)
    })
  }
})
