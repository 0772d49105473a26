/** What the backends' renderers keep per Mapping (address-parts.ts of each backend, and all a daemon's renderer keeps) and the fitted collections they keep it in. */
import {expect} from 'chai'
import {collectGarbage} from '../../src/lib/app/heap.js'
import {mappingShare as iptablesShare} from '../../src/lib/backend/iptables/address-parts.js'
import {IptablesRenderer} from '../../src/lib/backend/iptables/renderer.js'
import {mappingShare as nftablesShare} from '../../src/lib/backend/nftables/address-parts.js'
import {NftablesRenderer} from '../../src/lib/backend/nftables/renderer.js'
import {fittedMap} from '../../src/lib/net/fitted.js'
import {plan} from '../../src/lib/plan/plan.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticSnapshot} from '../../bench/synthetic.js'

const COUNT = 4000

function liveBytes(): number {
  collectGarbage()
  collectGarbage()
  return process.memoryUsage().heapUsed
}

describe('the shares a renderer keeps', () => {
  const {host, addresses} = syntheticHost()
  const {mappings} = plan(syntheticSnapshot(COUNT, addresses), host, BENCH_PLAN_OPTIONS).model

  // One address, two ports, two allowed sources each, as the 10,000-Mapping benchmark has. Measured
  // (rule and element strings included) before the collections were fitted: 1,490-1,580 bytes a
  // Mapping with iptables, 2,010-2,090 with nftables; after: 1,210-1,330 and 1,210-1,250. Then
  // 1,166-1,177 and 1,113-1,119 (other code around them), and with a share's entries in fewer lists
  // (and nftables elements joined flat): 1,044-1,047 and 903-912 (878-942 in later runs). With an
  // nftables share's ports and sets at an address in one list: 762-867 alone, 960 once inside the
  // whole unit suite (what V8 compiles and keeps for the code differs with what ran before).
  for (const [backend, share, limit] of [
    ['iptables', iptablesShare, 1110],
    ['nftables', nftablesShare, 1010],
  ] as const) {
    it(`${backend}: keeps a Mapping on one address without a Map of its addresses or room in its arrays`, () => {
      // Rendered once and let go first, so that neither the code nor what V8 grows once is counted.
      void mappings.map((mapping) => share(mapping))
      const before = liveBytes()
      const shares = mappings.map((mapping) => share(mapping))
      const perMapping = (liveBytes() - before) / COUNT
      expect(perMapping).to.be.below(limit)
      expect(shares[0]!.byAddress).not.to.be.instanceOf(Map)
      expect([...shares[0]!.byAddress.keys()]).to.deep.equal([mappings[0]!.addresses[0]!.address])
    })
  }
})

describe('what a daemon\'s renderer keeps', () => {
  const {host, addresses} = syntheticHost()
  // With egress SNAT, as the benchmarks run: two pods per Mapping in an egress set and the SNAT map.
  const {model} = plan(syntheticSnapshot(COUNT, addresses), host, BENCH_PLAN_OPTIONS)

  // Its shares, the parts of each address, the egress sets and the state it rendered last, strings
  // included. Measured at 4,000 Mappings: iptables 1,240-1,340 bytes a Mapping; nftables 1,900-1,960
  // while its egress elements were kept printed (each with its entry's comment), 1,230 printed when
  // read, 1,050-1,180 with its endpoint sets joined when read and a share's ports in its one list.
  for (const [backend, make, limit] of [
    ['iptables', () => new IptablesRenderer({partsFromFirst: true}), 1450],
    ['nftables', () => new NftablesRenderer({partsFromFirst: true}), 1300],
  ] as const) {
    it(`${backend}: keeps the benchmark's cluster in less than ${limit} bytes a Mapping`, () => {
      // Rendered once and let go first, so that neither the code nor what V8 grows once is counted.
      void make().render(model)
      const before = liveBytes()
      const renderer = make()
      const state = renderer.render(model)
      const perMapping = (liveBytes() - before) / COUNT
      // Parts kept, and the state alive until here.
      expect(renderer.stats.whole).to.equal(false)
      expect(state).to.be.an('object')
      expect(perMapping).to.be.below(limit)
    })
  }
})

describe('fittedMap', () => {
  it('answers for a map of one entry as the map does', () => {
    const map = new Map([['198.18.0.10', {rules: 2}]])
    const fitted = fittedMap(map)
    expect(fitted).not.to.equal(map)
    expect(fitted.size).to.equal(1)
    expect(fitted.get('198.18.0.10')).to.equal(map.get('198.18.0.10'))
    expect(fitted.get('198.18.0.11')).to.equal(undefined)
    expect([fitted.has('198.18.0.10'), fitted.has('198.18.0.11')]).to.deep.equal([true, false])
    expect([...fitted]).to.deep.equal([...map])
    expect([...fitted.keys()]).to.deep.equal([...map.keys()])
    expect([...fitted.values()]).to.deep.equal([...map.values()])
    const seen: unknown[] = []
    fitted.forEach((value, key, whole) => seen.push(key, value, whole))
    expect(seen).to.deep.equal(['198.18.0.10', map.get('198.18.0.10'), fitted])
  })

  it('answers for a map of a few entries as the map does, in its order', () => {
    const map = new Map<unknown, number>([
      ['allowed_24', 1],
      [Number.NaN, 2],
      ['endpoints', 3],
    ])
    const fitted = fittedMap(map)
    expect(fitted).not.to.equal(map)
    expect(fitted.size).to.equal(3)
    for (const key of ['allowed_24', Number.NaN, 'endpoints', 'allowed_32']) {
      expect([fitted.get(key), fitted.has(key)]).to.deep.equal([map.get(key), map.has(key)])
    }
    expect([...fitted]).to.deep.equal([...map])
    expect([...fitted.keys()]).to.deep.equal([...map.keys()])
    expect([...fitted.values()]).to.deep.equal([...map.values()])
    const seen: unknown[] = []
    fitted.forEach((value, key) => seen.push(key, value))
    expect(seen).to.deep.equal([...map].flat())
  })

  it('keeps a map of no entry or of many as it is', () => {
    const none = new Map<string, number>()
    const many = new Map(Array.from({length: 9}, (_, i) => [`key${i}`, i]))
    expect(fittedMap(none)).to.equal(none)
    expect(fittedMap(many)).to.equal(many)
  })
})
