import {expect} from 'chai'
import {outputPaint, formatTable} from '../../src/lib/format/columns.js'
import {statusLines} from '../../src/lib/status/format.js'
import type {HostStatus} from '../../src/lib/status/host.js'
import {buildStatusReport, type StatusReport} from '../../src/lib/status/report.js'
import {mappingExplanationLines, packetExplanationLines} from '../../src/lib/explain/format.js'
import {explainMapping} from '../../src/lib/explain/mapping.js'
import {explainPacket, parsePacketSpec} from '../../src/lib/explain/packet.js'
import {desiredState, inspect, withoutRule} from './explain-fixture.js'

const ESC = String.fromCharCode(0x1b)
const HOST: HostStatus = {
  ipForward: '1',
  tools: [
    {name: 'iptables', present: true, version: 'iptables v1.8.9 (nf_tables)', install: null},
    {name: 'ipset', present: false, version: null, install: 'apt-get install ipset'},
  ],
  iptablesFlavour: 'nf_tables',
  lock: {path: '/run/smartnat/smartnat.lock', held: true, holder: {pid: 4242, purpose: 'watch', since: '2025-01-01T00:00:00.000Z', alive: true}},
  interfaces: [
    {name: 'eth1', addresses: ['198.18.0.10/24'], index: 1, table: 7001, gateway: '198.18.0.1', rpFilter: 2, fault: null},
    {name: 'eth2', addresses: ['198.18.2.10/24'], index: 2, table: 7002, gateway: '198.18.2.1', rpFilter: 1, fault: null},
  ],
  problems: ['ipset is missing; install it with `apt-get install ipset`'],
}

async function report(state = desiredState()): Promise<StatusReport> {
  const {inspection} = await inspect({state})
  return buildStatusReport(inspection, HOST)
}

describe('status output', () => {
  it('colours only on a terminal, and never with NO_COLOR', () => {
    expect(outputPaint({isTTY: false}, {}).level).to.equal(0)
    expect(outputPaint({isTTY: true}, {}).level).to.be.greaterThan(0)
    expect(outputPaint({isTTY: true}, {NO_COLOR: '1'}).level).to.equal(0)
    expect(outputPaint({isTTY: true}, {NO_COLOR: ''}).level).to.be.greaterThan(0)
  })

  it('tells a held lock from a free one, and names a holder that ended without letting go', async () => {
    const {inspection} = await inspect({state: desiredState()})
    const holder = {pid: 4242, purpose: 'watch', since: '2025-01-01T00:00:00.000Z'}
    const cases: [HostStatus['lock'], string][] = [
      [{path: '/run/smartnat/smartnat.lock', held: false, holder: null}, 'lock free'],
      [{path: '/run/smartnat/smartnat.lock', held: true, holder: null}, 'lock held (holder not recorded yet)'],
      [
        {path: '/run/smartnat/smartnat.lock', held: false, holder: {...holder, alive: false}},
        'lock free (last held by pid 4242 (watch) since 2025-01-01T00:00:00.000Z, which ended without letting go)',
      ],
    ]
    for (const [lock, words] of cases) {
      const [first] = statusLines(buildStatusReport(inspection, {...HOST, lock}), {paint: outputPaint({isTTY: false}, {}), wide: false})
      expect(first, words).to.match(new RegExp(`; ${words.replace(/[()]/g, '\\$&')}$`))
    }
  })

  it('prints plain, aligned lines when not on a terminal', async () => {
    const lines = statusLines(await report(), {paint: outputPaint({isTTY: false}, {}), wide: false})
    expect(lines.join('\n')).to.not.include(ESC)
    expect(lines).to.deep.equal([
      'host: ip_forward on; iptables 1.8.9, ipset missing (nf_tables); lock held by pid 4242 (watch) since 2025-01-01T00:00:00.000Z',
      'kernel: iptables rules read back',
      'problem: ipset is missing; install it with `apt-get install ipset`',
      '',
      'INTERFACE  ADDRESSES       TABLE  GATEWAY     RP_FILTER',
      'eth1       198.18.0.10/24  7001   198.18.0.1  2',
      'eth2       198.18.2.10/24  7002   198.18.2.1  1',
      '',
      'NAMESPACE/NAME  ADDRESSES                PORTS               MODE     VIP            READY  STATE       PACKETS',
      'default/broken  -                        -                   -        -              -      invalid     -',
      'default/remote  -                        tcp/8080->web:8080  service  198.19.100.10  2      not-local   -',
      'default/web     198.18.0.10              tcp/80->web:8080    service  198.19.100.10  2      configured  0',
      'shop/api        198.18.0.10,198.18.2.10  udp/53->api:5353    service  198.19.100.20  1      configured  0',
      '',
      'default/broken: invalid: service "missing" not found in namespace "default"',
      '',
      'drift: none, the kernel matches the desired state',
    ])
  })

  it('colours states and problems on a terminal without changing the alignment', async () => {
    const paint = outputPaint({isTTY: true}, {})
    const coloured = statusLines(await report(), {paint, wide: false})
    const plain = statusLines(await report(), {paint: outputPaint({isTTY: false}, {}), wide: false})
    expect(coloured.join('\n')).to.include(`${ESC}[`)
    expect(coloured.map((l) => l.replaceAll(new RegExp(`${ESC}\\[[0-9;]*m`, 'g'), ''))).to.deep.equal(plain)
  })

  it('lists four addresses of an interface and counts the rest, unless -o wide', async () => {
    const many = {...HOST, interfaces: [{...HOST.interfaces[0]!, addresses: Array.from({length: 7}, (_, i) => `198.18.0.${10 + i}/24`)}]}
    const {inspection} = await inspect({state: desiredState()})
    const lineOf = (wide: boolean) => statusLines(buildStatusReport(inspection, many), {paint: outputPaint({isTTY: false}, {}), wide}).find((l) => l.startsWith('eth1'))!
    expect(lineOf(false).split(/ {2,}/)[1]).to.equal('198.18.0.10/24, 198.18.0.11/24, 198.18.0.12/24, 198.18.0.13/24 and 3 more')
    expect(lineOf(true).split(/ {2,}/)[1]).to.equal(Array.from({length: 7}, (_, i) => `198.18.0.${10 + i}/24`).join(', '))
  })

  it('-o wide adds bytes, endpoints, sources and addresses not on this host', async () => {
    const lines = statusLines(await report(), {paint: outputPaint({isTTY: false}, {}), wide: true})
    const header = lines.find((l) => l.startsWith('NAMESPACE/NAME'))!
    expect(header.split(/ {2,}/)).to.deep.equal(['NAMESPACE/NAME', 'ADDRESSES', 'PORTS', 'MODE', 'VIP', 'READY', 'STATE', 'PACKETS', 'BYTES', 'ENDPOINTS', 'SOURCES', 'NOT-LOCAL'])
    expect(lines.find((l) => l.startsWith('default/remote'))!.split(/ {2,}/)).to.deep.equal([
      'default/remote', '-', 'tcp/8080->web:8080', 'service', '198.19.100.10', '2', 'not-local', '-', '-', '198.19.200.11,198.19.200.12', '0.0.0.0/0', '198.18.9.9',
    ])
  })

  it('shows a Mapping being deleted as deleting, saying since when, and counts it apart from invalid ones', async () => {
    const {inspection} = await inspect({state: desiredState()})
    const since = '2026-01-02T03:04:05Z'
    inspection.plan.verdicts = inspection.plan.verdicts.map((v) =>
      v.name === 'broken' ? {...v, invalid: `being deleted since ${since}; no longer served`, deleting: since} : v,
    )
    const r = buildStatusReport(inspection, HOST)
    expect(r.mappings.find((m) => m.name === 'broken')).to.include({state: 'deleting', reason: `being deleted since ${since}; no longer served`})
    expect(r.summary).to.include({invalid: 0, deleting: 1})
    expect(statusLines(r, {paint: outputPaint({isTTY: false}, {}), wide: false})).to.include(`default/broken: deleting: being deleted since ${since}; no longer served`)
  })

  it('names the drifted Mapping and the missing rule', async () => {
    const lines = statusLines(await report(withoutRule(desiredState(), 'nat', 'default/web tcp/80')), {paint: outputPaint({isTTY: false}, {}), wide: false})
    expect(lines.slice(-2)).to.deep.equal([
      'drift: the kernel differs from the desired state (`smartnat sync` repairs it):',
      '  default/web  missing     nat SNM-A-5b4665a2: -A SNM-A-5b4665a2 -p tcp -m tcp --dport 80 -m comment --comment "default/web tcp/80" -j DNAT --to-destination 198.19.100.10:8080',
    ])
    expect(lines).to.include('default/web: drifted: the kernel lacks 1 of its rules and set entries; the next sync repairs it')
  })

  it('keeps a stable JSON shape', async () => {
    const r = await report()
    expect(Object.keys(r)).to.deep.equal(['backend', 'countsPackets', 'host', 'kernel', 'shared', 'mappings', 'summary'])
    expect(Object.keys(r.kernel)).to.deep.equal(['readable', 'reason', 'installed'])
    expect(Object.keys(r.mappings[0]!)).to.deep.equal([
      'namespace', 'name', 'state', 'reason', 'mode', 'service', 'serviceVIP', 'endpoints', 'groups', 'addresses', 'notLocalAddresses', 'allowedSources', 'ports', 'rules', 'packets', 'bytes', 'drift',
    ])
    expect(Object.keys(r.mappings.find((m) => m.name === 'web')!.rules[0]!)).to.deep.equal(['address', 'protocol', 'port', 'target', 'inKernel', 'packets', 'bytes'])
    expect(r.summary).to.deep.equal({total: 4, configured: 2, invalid: 1, deleting: 0, drifted: 0, faulty: 0, 'not-local': 1, unverified: 0, stale: 0})
    expect(JSON.parse(JSON.stringify(r))).to.deep.equal(r)
  })

  it('lays out columns by their visible width', () => {
    const paint = outputPaint({isTTY: true}, {})
    expect(formatTable(['A', 'B', 'C'], [[paint.red('xx'), 'y', 'z'], ['x', 'yyy', '']])).to.deep.equal(['A   B    C', `${paint.red('xx')}  y    z`, 'x   yyy'])
  })
})

describe('explain output', () => {
  it('a Mapping: facts, then each rule with whether the kernel has it', async () => {
    const {inspection} = await inspect({state: withoutRule(desiredState(), 'nat', 'default/web tcp/80')})
    const lines = mappingExplanationLines(explainMapping(inspection, 'default/web'), outputPaint({isTTY: false}, {}))
    expect(lines.slice(0, 8)).to.deep.equal([
      'Mapping default/web: drifted - the kernel lacks 1 of its rules and set entries; the next sync repairs it',
      '  Mode       service',
      '  Service    default/web',
      '  VIP        198.19.100.10',
      '  Endpoints  2 ready: 198.19.200.11, 198.19.200.12',
      '  Addresses  198.18.0.10',
      '  Sources    198.18.1.2/32',
      '  Ports      tcp/80 -> web:8080',
    ])
    expect(lines).to.include('  MISSING  -        nat SNM-A-5b4665a2  -A SNM-A-5b4665a2 -p tcp -m tcp --dport 80 -m comment --comment "default/web tcp/80" -j DNAT --to-destination 198.19.100.10:8080')
    expect(lines).to.include('  yes      -        set SNM-ALLOW       198.18.0.10,tcp:80,198.18.1.2')
  })

  it('a packet: verdict, why, reply path, steps; colours only on a terminal', async () => {
    const {inspection, backend} = await inspect()
    const e = explainPacket(inspection, backend.inspect, parsePacketSpec('198.18.1.2', '198.18.0.10:80'))
    const plain = packetExplanationLines(e, outputPaint({isTTY: false}, {}))
    expect(plain.slice(0, 6)).to.deep.equal([
      'packet 198.18.1.2 -> 198.18.0.10:80/tcp in eth1',
      'verdict forward -> 198.19.100.10:8080 by default/web (the kernel)',
      'why     198.18.1.2 is in allowedSources entry 198.18.1.2/32 of default/web; DNAT to 198.19.100.10:8080, masqueraded',
      'reply   connmark 0x100000 -> table 7001 via 198.18.0.1 dev eth1',
      '',
      'steps through the kernel:',
    ])
    expect(plain[6]).to.equal('  #   CHAIN                RULE')
    expect(plain[7]).to.equal('  1   mangle/PREROUTING    -A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING')
    expect(plain.join('\n')).to.not.include(ESC)
    expect(packetExplanationLines(e, outputPaint({isTTY: true}, {}))[1]).to.include(`${ESC}[`)
  })
})
