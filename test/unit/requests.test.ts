import {expect} from 'chai'
import {explainRequest, syncRequest, watchRequest} from '../../src/cli/requests.js'

const PLAN = {interfaces: '^eth1$', 'gw-offset': 1, masquerade: true, snat: false, 'max-ports-per-mapping': 50}
const HOST = {backend: 'iptables' as const, 'forward-accept': true, 'command-timeout': 10}
const SOURCE = {'from-file': 'examples', 'api-timeout': '30s'}
const LOCK = {'lock-file': '/run/smartnat/smartnat.lock', 'lock-wait': 30}

describe('explainRequest', () => {
  const cases: {desc: string; mapping?: string; flags?: Record<string, string>; want?: unknown; error?: string}[] = [
    {desc: 'NAMESPACE/NAME', mapping: 'shop/api', want: {mapping: 'shop/api'}},
    {desc: 'NAME in the namespace -n gives', mapping: 'api', flags: {namespace: 'shop'}, want: {mapping: 'shop/api'}},
    {desc: 'NAME alone, in "default" like kubectl', mapping: 'api', want: {mapping: 'default/api'}},
    {desc: 'NAMESPACE/NAME that -n agrees with', mapping: 'shop/api', flags: {namespace: 'shop'}, want: {mapping: 'shop/api'}},
    {desc: 'a namespace -n contradicts', mapping: 'shop/api', flags: {namespace: 'web'}, error: 'mapping "shop/api" names namespace shop, but -n says web'},
    {desc: 'three parts', mapping: 'a/b/c', error: 'mapping "a/b/c": expected NAMESPACE/NAME or NAME'},
    {desc: 'an empty name', mapping: 'shop/', error: 'mapping "shop/": expected NAMESPACE/NAME or NAME'},
    {desc: 'a Mapping and a packet', mapping: 'shop/api', flags: {src: '203.0.113.7', dst: '198.18.0.10:443'}, error: 'give either a Mapping or --src/--dst, not both'},
    {desc: 'neither', error: 'give a Mapping (NAMESPACE/NAME) or a packet (--src IP --dst IP:PORT)'},
    {desc: 'a packet', flags: {src: '203.0.113.7', dst: '198.18.0.10:443/udp'}, want: {packet: {src: '203.0.113.7', dst: '198.18.0.10', port: 443, protocol: 'udp'}}},
    {desc: 'a packet whose port is out of range', flags: {src: '203.0.113.7', dst: '198.18.0.10:70000'}, error: '--dst "198.18.0.10:70000": port must be 1..65535'},
  ]
  for (const c of cases) {
    it(c.desc, () => {
      const ask = () => explainRequest(c.mapping, {...SOURCE, ...PLAN, ...HOST, ...c.flags})
      if (c.error) expect(ask).to.throw(c.error)
      else expect(ask().target).to.deep.equal(c.want)
    })
  }

  it('checks the settings before the Mapping, as the flags come before the argument', () => {
    expect(() => explainRequest('a/b/c', {...SOURCE, ...PLAN, ...HOST, interfaces: '('})).to.throw('interfaces pattern "(" is not a valid regular expression')
  })
})

describe('watchRequest', () => {
  const WATCH = {
    ...SOURCE,
    ...PLAN,
    ...HOST,
    ...LOCK,
    'max-removal': '50%',
    'removal-delay': 2,
    resync: '60s',
    'min-sync-interval': '100ms',
    'status-timeout': '2m',
    'metrics-addr': '127.0.0.1:9469',
    'log-level': 'info',
    'flush-on-exit': false,
    'lease-namespace': 'smartnat-system',
    'lease-duration': '40s',
  }

  it('gives the source this host\'s Lease settings, the duration in whole seconds', () => {
    expect(watchRequest({...WATCH, 'lease-namespace': 'edge', 'lease-duration': '1500ms'}).source.lease).to.deep.equal({namespace: 'edge', durationSeconds: 2})
    expect(() => watchRequest({...WATCH, 'lease-duration': '500ms'})).to.throw('--lease-duration must be at least 1s, got 500ms')
  })

  it('gives the source the --dynamic-ports range, and refuses one that is not first-last', () => {
    expect(watchRequest({...WATCH, 'dynamic-ports': '40000-40100'}).source.dynamicPorts).to.deep.equal({first: 40000, last: 40100})
    expect(() => watchRequest({...WATCH, 'dynamic-ports': '40100-40000'})).to.throw('--dynamic-ports "40100-40000" must be a range of ports first-last within 1-65535, e.g. 30000-32767')
  })

  it('turns durations into milliseconds and the removal delay into resyncs of them', () => {
    const request = watchRequest({...WATCH, resync: '5m', 'removal-delay': 3})
    expect(request.resync).to.deep.equal({ms: 300_000, text: '5m'})
    expect(request.massRemoval).to.deep.equal({policy: {maxShare: 0.5}, delayMs: 900_000})
    expect([request.minIntervalMs, request.writebackDeadlineMs]).to.deep.equal([100, 120_000])
    expect(request.lock).to.deep.equal({path: '/run/smartnat/smartnat.lock', waitMs: 30_000})
  })

  // Each row gets this flag and every one after it wrong: the first of them is the one named.
  const wrong: [string, string, string][] = [
    ['resync', '5x', '--resync "5x" must be a positive duration'],
    ['metrics-addr', '127.0.0.1', '--metrics-addr: listen address "127.0.0.1" must be HOST:PORT'],
    ['interfaces', '(', 'interfaces pattern "(" is not a valid regular expression'],
    ['max-removal', '0.5', '--max-removal "0.5" must be a percentage'],
    ['api-timeout', 'soon', '--api-timeout "soon" must be a positive duration'],
    ['lease-duration', 'soon', '--lease-duration "soon" must be a positive duration'],
  ]
  wrong.forEach(([flag, , message], i) => {
    it(`names --${flag} first when it and every flag checked after it are wrong`, () => {
      const flags = {...WATCH, ...Object.fromEntries(wrong.slice(i).map(([name, value]) => [name, value]))}
      expect(() => watchRequest(flags)).to.throw(message)
    })
  })
})

describe('syncRequest', () => {
  const SYNC = {...PLAN, ...HOST, ...LOCK, 'max-removal': '50%', 'allow-mass-removal': false, 'dry-run': true, full: false}

  it('passes assumed addresses on for the dry run to parse, and leaves them out when not given', () => {
    expect(syncRequest({...SYNC, 'assume-addresses': '198.18.0.10'}).assumeAddresses).to.equal('198.18.0.10')
    expect(syncRequest(SYNC)).not.to.have.property('assumeAddresses')
  })

  it('allows a mass removal only when --allow-mass-removal says so', () => {
    const removal = {programmed: 20, removed: Array.from({length: 20}, (_, i) => `default/m${i}`)}
    expect(syncRequest(SYNC).removalGuard.allows(removal)).to.equal(false)
    expect(syncRequest({...SYNC, 'allow-mass-removal': true}).removalGuard.allows(removal)).to.equal(true)
  })
})
