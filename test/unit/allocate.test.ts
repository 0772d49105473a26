import {expect} from 'chai'
import {allocate, type Allocation, type AllocationInput} from '../../src/lib/allocate/allocate.js'
import {LOAD_BALANCER_CLASS} from '../../src/lib/mapping/loadbalancer.js'
import {poolConfig, type AddressPoolResource} from '../../src/lib/mapping/pool.js'
import type {MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'

interface Svc {
  name: string
  /** Day of January 2025 it was created: the older Service decides first. */
  day: number
  namespace?: string
  ports?: (number | string)[]
  recorded?: string
  addresses?: string
  loadBalancerIP?: string
  pool?: string
  shared?: string
  type?: string
  classless?: boolean
}

function service(s: Svc): ServiceResource {
  const annotations: Record<string, string> = {}
  if (s.addresses !== undefined) annotations['smartnat.aureacentral.com/addresses'] = s.addresses
  if (s.pool !== undefined) annotations['smartnat.aureacentral.com/pool'] = s.pool
  if (s.shared !== undefined) annotations['smartnat.aureacentral.com/allow-shared-ip'] = s.shared
  return {
    metadata: {namespace: s.namespace ?? 'shop', name: s.name, creationTimestamp: `2025-01-${String(s.day).padStart(2, '0')}T00:00:00Z`, annotations},
    spec: {
      type: s.type ?? 'LoadBalancer',
      ...(s.classless ? {} : {loadBalancerClass: LOAD_BALANCER_CLASS}),
      ...(s.loadBalancerIP ? {loadBalancerIP: s.loadBalancerIP} : {}),
      ports: (s.ports ?? [80]).map((p) => (typeof p === 'number' ? {port: p, protocol: 'TCP'} : {port: Number(p.split('/')[1]), protocol: p.split('/')[0]!})),
    },
    ...(s.recorded ? {status: {loadBalancer: {ingress: [{ip: s.recorded, ipMode: 'Proxy' as const}]}}} : {}),
  }
}

const pool = (name: string, addresses: string[], extra: Record<string, unknown> = {}): AddressPoolResource => ({metadata: {name}, spec: {addresses, ...extra}})

const EDGE = pool('edge', ['198.18.0.10-198.18.0.12'])

/** Each decision as one line: `name: 198.18.0.10 (new)`, `name: kept 198.18.0.10`, `name: pending: why`, `name: release 198.18.0.10`. */
function lines(allocation: Allocation): string[] {
  return allocation.decisions.map((d) => {
    const name = d.service.metadata.name
    if (d.kind === 'hold') return d.assigned ? `${name}: ${d.address} (new)` : `${name}: kept ${d.address}`
    if (d.kind === 'pending') return `${name}: pending: ${d.reason}`
    return `${name}: release ${d.address}`
  })
}

function run(services: Svc[], pools: AddressPoolResource[] = [EDGE], extra: Partial<AllocationInput> = {}): Allocation {
  return allocate({services: services.map(service), mappings: [], pools: poolConfig(pools), defaultLoadBalancer: false, ...extra})
}

describe('allocator', function () {
  const cases: {desc: string; services: Svc[]; pools?: AddressPoolResource[]; mappings?: MappingResource[]; defaultLoadBalancer?: boolean; want: string[]}[] = [
    {
      desc: 'hands out the first free addresses, oldest Service first, whatever the input order',
      services: [{name: 'b', day: 2}, {name: 'a', day: 1}],
      want: ['a: 198.18.0.10 (new)', 'b: 198.18.0.11 (new)'],
    },
    {
      desc: 'keeps what is recorded (sticky), and skips it for others',
      services: [{name: 'a', day: 1}, {name: 'b', day: 2, recorded: '198.18.0.10'}],
      want: ['a: 198.18.0.11 (new)', 'b: kept 198.18.0.10'],
    },
    {
      desc: 'gives the requested address (annotation, or loadBalancerIP)',
      services: [{name: 'a', day: 1, addresses: '198.18.0.12'}, {name: 'b', day: 2, loadBalancerIP: '198.18.0.11'}, {name: 'c', day: 3}],
      want: ['a: 198.18.0.12 (new)', 'b: 198.18.0.11 (new)', 'c: 198.18.0.10 (new)'],
    },
    {
      desc: 'leaves a Service requesting a taken address pending, saying who has it',
      services: [{name: 'a', day: 1, addresses: '198.18.0.10'}, {name: 'b', day: 2, addresses: '198.18.0.10'}],
      want: [
        'a: 198.18.0.10 (new)',
        'b: pending: the requested address 198.18.0.10 is taken: it is held by shop/a (sharing needs the same smartnat.aureacentral.com/allow-shared-ip key in the same namespace)',
      ],
    },
    {
      desc: 'decides requests before Services taking any free address, however old those are',
      services: [{name: 'any', day: 1}, {name: 'asks', day: 2, addresses: '198.18.0.10'}],
      want: ['any: 198.18.0.11 (new)', 'asks: 198.18.0.10 (new)'],
    },
    {
      desc: 'leaves a request outside every pool pending',
      services: [{name: 'a', day: 1, addresses: '198.18.9.9'}],
      want: ['a: pending: the requested address 198.18.9.9 is in no AddressPool'],
    },
    {
      desc: 'refuses a request of more than one address',
      services: [{name: 'a', day: 1, addresses: '198.18.0.10,198.18.0.11'}],
      want: ['a: pending: the requested address "198.18.0.10,198.18.0.11" must be one IPv4 address'],
    },
    {
      desc: 'shares an address between Services of one key and namespace on disjoint ports',
      services: [{name: 'tcp', day: 1, shared: 'dns', ports: ['TCP/53']}, {name: 'udp', day: 2, shared: 'dns', ports: ['UDP/53']}, {name: 'other', day: 3, shared: 'dns', ports: ['TCP/53']}],
      want: ['tcp: 198.18.0.10 (new)', 'udp: 198.18.0.10 (new)', 'other: 198.18.0.11 (new)'],
    },
    {
      desc: 'does not share across namespaces, even with the same key',
      services: [{name: 'a', day: 1, shared: 'k', ports: [80]}, {name: 'b', day: 2, shared: 'k', ports: [81], namespace: 'ops'}],
      want: ['a: 198.18.0.10 (new)', 'b: 198.18.0.11 (new)'],
    },
    {
      desc: 'leaves Services pending once the pool is exhausted',
      services: [1, 2, 3, 4].map((day) => ({name: `s${day}`, day})),
      want: ['s1: 198.18.0.10 (new)', 's2: 198.18.0.11 (new)', 's3: 198.18.0.12 (new)', 's4: pending: AddressPool edge has no free address'],
    },
    {
      desc: 'draws from the pool the annotation names, and from auto-assigning pools only otherwise',
      pools: [EDGE, pool('manual', ['198.18.1.1'], {autoAssign: false})],
      services: [{name: 'a', day: 1, pool: 'manual'}, {name: 'b', day: 2, pool: 'nope'}, {name: 'c', day: 3}],
      want: ['a: 198.18.1.1 (new)', 'b: pending: AddressPool nope does not exist', 'c: 198.18.0.10 (new)'],
    },
    {
      desc: 'moves a recorded address when the pool asked for changes',
      pools: [EDGE, pool('other', ['198.18.1.1'])],
      services: [{name: 'a', day: 1, recorded: '198.18.0.10', pool: 'other'}],
      want: ['a: 198.18.1.1 (new)'],
    },
    {
      desc: 'moves the younger of two Services that a race gave one address',
      services: [{name: 'young', day: 2, recorded: '198.18.0.10'}, {name: 'old', day: 1, recorded: '198.18.0.10'}],
      want: ['old: kept 198.18.0.10', 'young: 198.18.0.11 (new)'],
    },
    {
      desc: 'never hands out a Mapping\'s address on its own',
      mappings: [{metadata: {namespace: 'shop', name: 'm'}, spec: {addresses: ['198.18.0.10']}}],
      services: [{name: 'a', day: 1}],
      want: ['a: 198.18.0.11 (new)'],
    },
    {
      desc: 'admits only the namespaces a pool lists',
      pools: [pool('edge', ['198.18.0.10'], {namespaces: ['ops']})],
      services: [{name: 'a', day: 1}, {name: 'b', day: 2, namespace: 'ops'}],
      want: ['a: pending: no AddressPool admits namespace shop', 'b: 198.18.0.10 (new)'],
    },
    {
      desc: 'hands out no address that two pools list',
      pools: [pool('a', ['198.18.0.10-198.18.0.11']), pool('b', ['198.18.0.10'])],
      services: [{name: 's', day: 1}, {name: 't', day: 2, addresses: '198.18.0.10'}],
      want: ['s: 198.18.0.11 (new)', 't: pending: the requested address 198.18.0.10 is in overlapping AddressPools a, b'],
    },
    {
      desc: 'releases what a Service no longer served recorded, and serves classless ones as the default',
      defaultLoadBalancer: true,
      services: [{name: 'was', day: 1, type: 'ClusterIP', recorded: '198.18.0.10'}, {name: 'plain', day: 2, classless: true}],
      want: ['was: release 198.18.0.10', 'plain: 198.18.0.10 (new)'],
    },
  ]
  it('admits by namespace labels: a selecting pool serves matching namespaces, and an address already held stays when the labels change', function () {
    const selecting = [pool('edge', ['198.18.0.10-198.18.0.11'], {namespaceSelector: {matchExpressions: [{key: 'edge', operator: 'In', values: ['yes']}]}})]
    const namespaceLabels = new Map([['shop', {edge: 'yes'}], ['ops', {edge: 'no'}]])
    const first = run([{name: 'a', day: 1}, {name: 'b', day: 2, namespace: 'ops'}, {name: 'c', day: 3, namespace: 'unlisted'}], selecting, {namespaceLabels})
    expect(lines(first)).to.deep.equal(['a: 198.18.0.10 (new)', 'b: pending: no AddressPool admits namespace ops', 'c: pending: no AddressPool admits namespace unlisted'])
    const relabelled = new Map([['shop', {edge: 'no'}]])
    const later = run([{name: 'a', day: 1, recorded: '198.18.0.10'}, {name: 'd', day: 4}], selecting, {namespaceLabels: relabelled})
    expect(lines(later)).to.deep.equal(['a: kept 198.18.0.10', 'd: pending: no AddressPool admits namespace shop'])
  })

  for (const {desc, services, pools, mappings, defaultLoadBalancer, want} of cases) {
    it(desc, function () {
      expect(lines(run(services, pools, {...(mappings ? {mappings} : {}), ...(defaultLoadBalancer ? {defaultLoadBalancer} : {})}))).to.deep.equal(want)
    })
  }

  it('counts each pool\'s addresses in use and free, and reports Services whose pool is gone as orphaned', function () {
    const allocation = run([{name: 'a', day: 1, recorded: '198.18.0.10'}, {name: 'b', day: 2, recorded: '198.18.7.7'}])
    expect(allocation.pools).to.deep.equal([{name: 'edge', inUse: 1, free: 2, overlapsWith: []}])
    expect(allocation.orphaned.map((o) => [o.service.metadata.name, o.address])).to.deep.equal([['b', '198.18.7.7']])
    expect(lines(allocation)).to.deep.equal(['a: kept 198.18.0.10', 'b: kept 198.18.7.7'])
  })
})
