import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {expect} from 'chai'
import {readManifests} from '../../src/lib/source/file.js'
import {firstFree, poolAdmits, poolConfig, poolHands, poolSize, type AddressPoolResource} from '../../src/lib/mapping/pool.js'
import {ipv4ToInt, type Ipv4} from '../../src/lib/net/ipv4.js'

const pool = (name: string, spec: Record<string, unknown>): AddressPoolResource => ({metadata: {name}, spec})

describe('AddressPool parsing', function () {
  const invalid: {desc: string; spec: Record<string, unknown>; error: string}[] = [
    {desc: 'no addresses', spec: {}, error: 'parsing address pool p: spec.addresses must list at least one CIDR or first-last range'},
    {desc: 'a bad prefix', spec: {addresses: ['198.18.0.0/33']}, error: 'parsing address pool p: spec.addresses[0] "198.18.0.0/33": prefix length must be 0..32'},
    {desc: 'a reversed range', spec: {addresses: ['198.18.0.9-198.18.0.1']}, error: 'parsing address pool p: spec.addresses[0] "198.18.0.9-198.18.0.1": the first address is after the last'},
    {desc: 'a range of names', spec: {addresses: ['a-b']}, error: 'parsing address pool p: spec.addresses[0] "a-b": a range must be two IPv4 addresses, first-last'},
    {desc: 'autoAssign as text', spec: {addresses: ['198.18.0.1'], autoAssign: 'yes'}, error: 'parsing address pool p: spec.autoAssign "yes" must be true or false'},
    {desc: 'a bad namespace', spec: {addresses: ['198.18.0.1'], namespaces: ['Shop']}, error: 'parsing address pool p: spec.namespaces[0] "Shop" is not a namespace name'},
    {
      desc: 'a namespace selector with an unknown operator',
      spec: {addresses: ['198.18.0.1'], namespaceSelector: {matchExpressions: [{key: 'tier', operator: 'Equals', values: ['edge']}]}},
      error: 'parsing address pool p: spec.namespaceSelector.matchExpressions[0].operator "Equals" must be In, NotIn, Exists or DoesNotExist',
    },
  ]
  for (const {desc, spec, error} of invalid) {
    it(`rejects ${desc}, naming the pool, and keeps the others`, function () {
      const config = poolConfig([pool('p', spec), pool('ok', {addresses: ['198.18.1.0/30']})])
      expect(config.errors.map((e) => e.message)).to.deep.equal([error])
      expect([...config.pools.keys()]).to.deep.equal(['ok'])
    })
  }

  it('parses CIDRs, ranges and bare addresses, joining what touches', function () {
    const config = poolConfig([pool('p', {addresses: ['198.18.0.4/30', '198.18.0.8-198.18.0.9', '198.18.0.20']})])
    const p = config.pools.get('p')!
    expect(p.ranges.length).to.equal(2)
    expect(poolSize(p)).to.equal(7)
    expect(p.autoAssign).to.equal(true)
    expect(firstFree(p, (ip) => ip !== '198.18.0.9')).to.equal('198.18.0.9')
  })

  it('finds the first free address from a given one on, without asking about those before it', function () {
    const p = poolConfig([pool('p', {addresses: ['198.18.0.4/30', '198.18.0.20']})]).pools.get('p')!
    const asked: string[] = []
    const taken = (ip: string) => {
      asked.push(ip)
      return ip === '198.18.0.6'
    }
    expect(firstFree(p, taken, ipv4ToInt('198.18.0.6' as Ipv4))).to.equal('198.18.0.7')
    expect(asked).to.deep.equal(['198.18.0.6', '198.18.0.7'])
    expect(firstFree(p, () => false, ipv4ToInt('198.18.0.8' as Ipv4))).to.equal('198.18.0.20')
    expect(firstFree(p, () => false, ipv4ToInt('198.18.0.21' as Ipv4))).to.equal(undefined)
  })

  it('reports overlapping pools on both, and hands out the overlap from neither', function () {
    const config = poolConfig([pool('a', {addresses: ['198.18.0.0/29']}), pool('b', {addresses: ['198.18.0.6-198.18.0.9']})])
    const a = config.pools.get('a')!
    const b = config.pools.get('b')!
    expect(a.overlapsWith).to.deep.equal(['b'])
    expect(b.overlapsWith).to.deep.equal(['a'])
    expect(poolHands(a, '198.18.0.6' as Ipv4)).to.equal(false)
    expect(poolHands(b, '198.18.0.7' as Ipv4)).to.equal(false)
    expect(poolHands(b, '198.18.0.8' as Ipv4)).to.equal(true)
    expect([poolSize(a), poolSize(b)]).to.deep.equal([6, 2])
    expect(firstFree(b, () => false)).to.equal('198.18.0.8')
  })

  it('admits the namespaces it lists, or any', function () {
    const config = poolConfig([pool('p', {addresses: ['198.18.0.1'], namespaces: ['shop']}), pool('q', {addresses: ['198.18.0.2']})])
    expect(poolAdmits(config.pools.get('p')!, 'shop')).to.equal(true)
    expect(poolAdmits(config.pools.get('p')!, 'ops')).to.equal(false)
    expect(poolAdmits(config.pools.get('q')!, 'ops')).to.equal(true)
  })

  it('admits the namespaces whose labels its selector matches; one whose labels are unknown matches none', function () {
    const config = poolConfig([pool('p', {addresses: ['198.18.0.1'], namespaceSelector: {matchLabels: {tier: 'edge'}}})])
    const p = config.pools.get('p')!
    expect(poolAdmits(p, 'shop', {tier: 'edge'})).to.equal(true)
    expect(poolAdmits(p, 'shop', {tier: 'core'})).to.equal(false)
    expect(poolAdmits(p, 'shop')).to.equal(false)
  })

  it('with both namespaces and a selector, admits only a listed namespace whose labels match', function () {
    const config = poolConfig([pool('p', {addresses: ['198.18.0.1'], namespaces: ['shop'], namespaceSelector: {matchExpressions: [{key: 'tier', operator: 'Exists'}]}})])
    const p = config.pools.get('p')!
    expect(poolAdmits(p, 'shop', {tier: 'x'})).to.equal(true)
    expect(poolAdmits(p, 'ops', {tier: 'x'})).to.equal(false)
    expect(poolAdmits(p, 'shop', {})).to.equal(false)
  })
})

describe('the file source with AddressPools', function () {
  it('reads Namespace documents with their labels', async function () {
    const dir = await mkdtemp(join(tmpdir(), 'smartnat-pools-'))
    try {
      const file = join(dir, 'ns.yaml')
      await writeFile(file, 'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {tier: edge}}\n')
      const snapshot = await readManifests(file)
      expect(snapshot.namespaces).to.deep.equal([{apiVersion: 'v1', kind: 'Namespace', metadata: {name: 'shop', labels: {tier: 'edge'}}}])
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })

  it('reads AddressPool documents without giving them a namespace', async function () {
    const dir = await mkdtemp(join(tmpdir(), 'smartnat-pools-'))
    try {
      const file = join(dir, 'pools.yaml')
      await writeFile(file, 'apiVersion: smartnat.aureacentral.com/v1alpha1\nkind: AddressPool\nmetadata: {name: edge}\nspec: {addresses: [198.18.0.0/30]}\n')
      const snapshot = await readManifests(file)
      expect(snapshot.addressPools).to.deep.equal([{apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'AddressPool', metadata: {name: 'edge'}, spec: {addresses: ['198.18.0.0/30']}}])
      expect(snapshot.mappings).to.deep.equal([])
      expect(snapshot.namespaces).to.equal(undefined)
    } finally {
      await rm(dir, {recursive: true, force: true})
    }
  })
})
