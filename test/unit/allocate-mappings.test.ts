import {expect} from 'chai'
import {allocate} from '../../src/lib/allocate/allocate.js'
import {allocateMappings, type MappingDecision} from '../../src/lib/allocate/mappings.js'
import {FILE_NOT_ALLOCATED, withPendingAllocations} from '../../src/lib/allocate/pending.js'
import {DEFAULT_DYNAMIC_PORTS, parsePortRange, type PortRange} from '../../src/lib/mapping/dynamic.js'
import {LOAD_BALANCER_CLASS} from '../../src/lib/mapping/loadbalancer.js'
import {poolConfig, type AddressPoolResource} from '../../src/lib/mapping/pool.js'
import type {AllocatedRecord, MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import type {Snapshot} from '../../src/lib/plan/model.js'

interface Map_ {
  name: string
  /** Day of January 2025 it was created: the older Mapping decides first. */
  day: number
  namespace?: string
  pool?: string
  addresses?: string[]
  /** `80` a port of its own; `>80` or `udp>53`: a port left to allocation, leading to that Service port. */
  ports?: string[]
  allocated?: AllocatedRecord
}

function mapping(m: Map_): MappingResource {
  return {
    apiVersion: 'smartnat.aureacentral.com/v1alpha1',
    kind: 'Mapping',
    metadata: {namespace: m.namespace ?? 'shop', name: m.name, creationTimestamp: `2025-01-${String(m.day).padStart(2, '0')}T00:00:00Z`},
    spec: {
      ...(m.pool === undefined ? {addresses: m.addresses ?? ['198.18.0.50']} : {addressPool: m.pool}),
      serviceName: 'web',
      ports: (m.ports ?? ['>80']).map((text) => {
        const [protocol, rest] = text.includes('>') ? [text.split('>')[0] || 'tcp', text.split('>')[1]!] : ['tcp', text]
        return text.includes('>') ? {protocol, servicePort: Number(rest)} : {port: Number(rest), protocol}
      }),
    },
    ...(m.allocated === undefined ? {} : {status: {allocated: m.allocated}}),
  }
}

function lbService(name: string, day: number, recorded?: string, ports: number[] = [80]): ServiceResource {
  return {
    metadata: {namespace: 'shop', name, creationTimestamp: `2025-01-${String(day).padStart(2, '0')}T00:00:00Z`},
    spec: {type: 'LoadBalancer', loadBalancerClass: LOAD_BALANCER_CLASS, ports: ports.map((port) => ({port, protocol: 'TCP'}))},
    ...(recorded === undefined ? {} : {status: {loadBalancer: {ingress: [{ip: recorded, ipMode: 'Proxy' as const}]}}}),
  }
}

const pool = (name: string, addresses: string[], extra: Record<string, unknown> = {}): AddressPoolResource => ({metadata: {name}, spec: {addresses, ...extra}})
const EDGE = pool('edge', ['198.18.0.10-198.18.0.12'])

/** Each decision as one line: `name: 198.18.0.10 tcp>80=30000 (new)`, `name: kept ...`, `name: pending: why`, `name: release`. */
function line(d: MappingDecision): string {
  const name = d.mapping.metadata.name
  if (d.kind === 'release') return `${name}: release`
  if (d.kind === 'pending') return `${name}: pending: ${d.reason}`
  const ports = d.allocated.ports.map((p) => ` ${p.protocol}>${p.servicePort}=${p.port}`).join('')
  return `${name}: ${d.assigned ? '' : 'kept '}${d.allocated.addresses.join(',')}${ports}${d.assigned ? ' (new)' : ''}`
}

function run(mappings: Map_[], options: {pools?: AddressPoolResource[]; services?: ServiceResource[]; dynamicPorts?: PortRange} = {}): string[] {
  return allocateMappings({
    mappings: mappings.map(mapping),
    services: options.services ?? [],
    pools: poolConfig(options.pools ?? [EDGE]),
    defaultLoadBalancer: false,
    dynamicPorts: options.dynamicPorts ?? DEFAULT_DYNAMIC_PORTS,
  }).map(line)
}

describe('allocator of Mappings that ask for an address or a port', () => {
  const cases: {desc: string; mappings: Map_[]; pools?: AddressPoolResource[]; services?: ServiceResource[]; dynamicPorts?: PortRange; want: string[]}[] = [
    {
      desc: 'gives each Mapping naming a pool an address of its own and the lowest ports of the range, oldest first',
      mappings: [{name: 'young', day: 3, pool: 'edge'}, {name: 'old', day: 1, pool: 'edge', ports: ['>80', 'udp>53', '443']}],
      want: ['young: 198.18.0.11 tcp>80=30000 (new)', 'old: 198.18.0.10 tcp>80=30000 udp>53=30000 (new)'],
    },
    {
      desc: 'a Mapping with addresses of its own gets ports free on every one of them, past those Mappings list there',
      mappings: [
        {name: 'static', day: 1, addresses: ['198.18.0.50'], ports: ['30000', '30002']},
        {name: 'other', day: 2, addresses: ['198.18.0.51'], ports: ['30001']},
        {name: 'dyn', day: 3, addresses: ['198.18.0.50', '198.18.0.51'], ports: ['>80', '>81']},
      ],
      want: ['dyn: 198.18.0.50,198.18.0.51 tcp>80=30003 tcp>81=30004 (new)'],
    },
    {
      desc: 'ports left to allocation on a shared address never collide, and a protocol is counted apart',
      mappings: [
        {name: 'a', day: 1, ports: ['>80']},
        {name: 'b', day: 2, ports: ['>80', 'udp>53']},
      ],
      want: ['a: 198.18.0.50 tcp>80=30000 (new)', 'b: 198.18.0.50 tcp>80=30001 udp>53=30000 (new)'],
    },
    {
      desc: 'a record is sticky: an older Mapping without one never takes it',
      mappings: [
        {name: 'old', day: 1, pool: 'edge'},
        {name: 'young', day: 2, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 31000}]}},
      ],
      want: ['old: 198.18.0.11 tcp>80=30000 (new)', 'young: kept 198.18.0.10 tcp>80=31000'],
    },
    {
      desc: 'one address recorded for two Mappings (two instances raced): the younger moves',
      mappings: [
        {name: 'old', day: 1, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}},
        {name: 'young', day: 2, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}},
      ],
      want: ['old: kept 198.18.0.10 tcp>80=30000', 'young: 198.18.0.11 tcp>80=30000 (new)'],
    },
    {
      desc: 'one port recorded for two Mappings on one address: the younger gets another',
      mappings: [
        {name: 'old', day: 1, allocated: {addresses: ['198.18.0.50'], ports: [{protocol: 'tcp', servicePort: 80, port: 30005}]}},
        {name: 'young', day: 2, allocated: {addresses: ['198.18.0.50'], ports: [{protocol: 'tcp', servicePort: 80, port: 30005}]}},
      ],
      want: ['old: kept 198.18.0.50 tcp>80=30005', 'young: 198.18.0.50 tcp>80=30000 (new)'],
    },
    {
      desc: 'a record stays when a younger Mapping lists its address or port, and moves when an older one does',
      mappings: [
        {name: 'kept', day: 2, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}},
        {name: 'moved', day: 2, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.11'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}},
        {name: 'port-kept', day: 2, allocated: {addresses: ['198.18.0.50'], ports: [{protocol: 'tcp', servicePort: 80, port: 30005}]}},
        {name: 'port-moved', day: 2, allocated: {addresses: ['198.18.0.50'], ports: [{protocol: 'tcp', servicePort: 81, port: 30006}]}, ports: ['>81']},
        {name: 'younger', day: 3, addresses: ['198.18.0.10', '198.18.0.50'], ports: ['30005']},
        {name: 'older', day: 1, addresses: ['198.18.0.11', '198.18.0.50'], ports: ['30006']},
      ],
      want: ['kept: kept 198.18.0.10 tcp>80=30000', 'moved: 198.18.0.12 tcp>80=30000 (new)', 'port-kept: kept 198.18.0.50 tcp>80=30005', 'port-moved: 198.18.0.50 tcp>81=30000 (new)'],
    },
    {
      desc: 'a changed request is allocated again: another pool, other addresses, a port no longer left empty',
      mappings: [
        {name: 'pool', day: 1, pool: 'edge', allocated: {pool: 'gone', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}},
        {name: 'addresses', day: 2, addresses: ['198.18.0.51'], allocated: {addresses: ['198.18.0.50'], ports: [{protocol: 'tcp', servicePort: 80, port: 30007}]}},
        {name: 'static', day: 3, ports: ['80'], allocated: {addresses: ['198.18.0.50'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}},
      ],
      want: ['pool: 198.18.0.10 tcp>80=30000 (new)', 'addresses: 198.18.0.51 tcp>80=30000 (new)', 'static: release'],
    },
    {
      desc: 'a port added to the spec is allocated; the ports recorded stay',
      mappings: [{name: 'grown', day: 1, pool: 'edge', ports: ['>80', '>81'], allocated: {pool: 'edge', addresses: ['198.18.0.12'], ports: [{protocol: 'tcp', servicePort: 81, port: 30009}]}}],
      want: ['grown: 198.18.0.12 tcp>80=30000 tcp>81=30009 (new)'],
    },
    {
      desc: 'addresses Services hold, recorded or allocated in the same pass, and addresses Mappings list are taken',
      services: [lbService('recorded', 1, '198.18.0.10'), lbService('new', 2)],
      mappings: [{name: 'listed', day: 1, addresses: ['198.18.0.12'], ports: ['80']}, {name: 'dyn', day: 3, pool: 'edge'}],
      want: ['dyn: pending: AddressPool edge has no free address'],
    },
    {
      desc: 'a Service keeps an address a Mapping was also given (a race): the Mapping moves',
      services: [lbService('svc', 5, '198.18.0.10')],
      mappings: [{name: 'dyn', day: 1, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}}],
      want: ['dyn: 198.18.0.11 tcp>80=30000 (new)'],
    },
    {
      desc: 'ports a Service exposes on a Mapping\'s own address are taken',
      services: [lbService('svc', 1, '198.18.0.50', [30000, 30001])],
      mappings: [{name: 'dyn', day: 2, ports: ['>80']}],
      want: ['dyn: 198.18.0.50 tcp>80=30002 (new)'],
    },
    {
      desc: 'the range is exhausted: pending, naming the range and the addresses',
      dynamicPorts: {first: 40000, last: 40001},
      mappings: [{name: 'a', day: 1, ports: ['>80', '>81']}, {name: 'b', day: 2, ports: ['>82']}],
      want: ['a: 198.18.0.50 tcp>80=40000 tcp>81=40001 (new)', 'b: pending: no free tcp port in 40000-40001 on 198.18.0.50'],
    },
    {
      desc: 'a pending Mapping keeps what of its record still stands, and holds nothing else',
      dynamicPorts: {first: 40000, last: 40000},
      mappings: [
        {name: 'a', day: 1, pool: 'edge', ports: ['>80', '>81'], allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 40000}]}},
        {name: 'b', day: 2, pool: 'edge'},
      ],
      want: ['a: pending: no free tcp port in 40000-40000 on 198.18.0.10', 'b: 198.18.0.11 tcp>80=40000 (new)'],
    },
    {
      desc: 'a pool that does not exist, does not parse, or does not admit the namespace',
      pools: [EDGE, pool('broken', ['not-an-address']), pool('team', ['198.18.1.0/30'], {namespaces: ['team']})],
      mappings: [{name: 'a', day: 1, pool: 'nope'}, {name: 'b', day: 2, pool: 'broken'}, {name: 'c', day: 3, pool: 'team'}],
      want: ['a: pending: AddressPool nope does not exist', 'b: pending: AddressPool broken does not exist (it does not parse)', 'c: pending: AddressPool team does not admit namespace shop'],
    },
    {
      desc: 'a pool that assigns nothing automatically still serves a Mapping naming it',
      pools: [pool('manual', ['198.18.2.1'], {autoAssign: false})],
      mappings: [{name: 'a', day: 1, pool: 'manual', ports: ['443']}],
      want: ['a: 198.18.2.1 (new)'],
    },
  ]
  for (const {desc, want, ...input} of cases) it(desc, () => expect(run(input.mappings, input)).to.deep.equal(want))

  it('a Mapping without a creationTimestamp keeps its record too', () => {
    const undated = mapping({name: 'undated', day: 1, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.11'], ports: [{protocol: 'tcp', servicePort: 80, port: 30001}]}})
    delete undated.metadata.creationTimestamp
    const decisions = allocateMappings({mappings: [undated], services: [], pools: poolConfig([EDGE]), defaultLoadBalancer: false, dynamicPorts: DEFAULT_DYNAMIC_PORTS})
    expect(decisions.map(line)).to.deep.equal(['undated: kept 198.18.0.11 tcp>80=30001'])
  })

  it('decides the same whatever order the Mappings come in', () => {
    const all: Map_[] = [{name: 'a', day: 1, pool: 'edge'}, {name: 'b', day: 2, pool: 'edge'}, {name: 'c', day: 3, ports: ['>80']}]
    expect(run([...all].reverse()).sort()).to.deep.equal(run(all).sort())
  })

  it('the Services\' allocator never hands out an address a Mapping was given, and counts it in use in its pool', () => {
    const dyn = mapping({name: 'dyn', day: 1, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: []}})
    const services = allocate({services: [lbService('svc', 2)], mappings: [dyn], pools: poolConfig([EDGE]), defaultLoadBalancer: false})
    expect(services.decisions.map((d) => (d.kind === 'hold' ? d.address : d.kind))).to.deep.equal(['198.18.0.11'])
    expect(services.pools).to.deep.equal([{name: 'edge', inUse: 2, free: 1, overlapsWith: []}])
  })
})

describe('--dynamic-ports', () => {
  it('reads first-last and refuses anything else, saying what it wants', () => {
    expect(parsePortRange('30000-32767')).to.deep.equal({first: 30000, last: 32767})
    for (const bad of ['30000', '0-10', '10-5', '1-65536', 'a-b']) {
      expect(() => parsePortRange(bad)).to.throw(`--dynamic-ports ${JSON.stringify(bad)} must be a range of ports first-last within 1-65535, e.g. 30000-32767`)
    }
  })
})

describe('Mappings waiting for allocation, before planning', () => {
  const snapshot = (mappings: MappingResource[]): Snapshot => ({mappings, services: [], endpointSlices: [], addressPools: [EDGE]})
  const options = {defaultLoadBalancer: false, dynamicPorts: DEFAULT_DYNAMIC_PORTS, allocates: true}

  it('marks each waiting Mapping with why, leaves a recorded one and a static one as they are', () => {
    const recorded = mapping({name: 'recorded', day: 1, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}})
    const fresh = mapping({name: 'fresh', day: 2, pool: 'edge'})
    const lacking = mapping({name: 'lacking', day: 3, pool: 'nope'})
    const plain = mapping({name: 'plain', day: 4, ports: ['80']})
    const marked = withPendingAllocations(snapshot([recorded, fresh, lacking, plain]), options).mappings
    expect(marked.map((m) => m.pending)).to.deep.equal([
      undefined,
      'allocation not recorded yet: it is written to status.allocated after this pass, and served from the next',
      'not allocated: AddressPool nope does not exist',
      undefined,
    ])
    expect(marked[0]).to.equal(recorded)
    expect(marked[3]).to.equal(plain)
    expect(marked[1]!.spec).to.equal(fresh.spec)
  })

  it('gives the very same list and objects for the same snapshot lists, and the snapshot itself when no Mapping asks', () => {
    const input = snapshot([mapping({name: 'fresh', day: 2, pool: 'edge'})])
    const first = withPendingAllocations(input, options)
    const second = withPendingAllocations({...input}, options)
    expect(second.mappings).to.equal(first.mappings)
    const plain = snapshot([mapping({name: 'plain', day: 4, ports: ['80']})])
    expect(withPendingAllocations(plain, options)).to.equal(plain)
  })

  it('with the file source, a Mapping is served on its record only, and otherwise told nothing allocates there', () => {
    const fresh = mapping({name: 'fresh', day: 2, pool: 'edge'})
    const recorded = mapping({name: 'recorded', day: 1, pool: 'edge', allocated: {pool: 'edge', addresses: ['198.18.0.10'], ports: [{protocol: 'tcp', servicePort: 80, port: 30000}]}})
    const marked = withPendingAllocations(snapshot([fresh, recorded]), {...options, allocates: false}).mappings
    expect(marked.map((m) => m.pending)).to.deep.equal([FILE_NOT_ALLOCATED, undefined])
  })
})
