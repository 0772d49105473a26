/**
 * Status keys no live host maintains: keys of hosts whose Lease expired and keys with no host (the Go
 * controller's). Which are stale, who removes them, what Ready counts, and what a Mapping being deleted is told.
 */
import {expect} from 'chai'
import type {MappingResource, MappingStatus} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import type {HostInfo, MappingVerdict} from '../../src/lib/plan/model.js'
import {isLiveKey, removesStaleKeys, type LiveHosts} from '../../src/lib/sync/live-hosts.js'
import {desiredStatus, ownAddresses} from '../../src/lib/sync/status.js'

const T0 = new Date('2025-01-01T00:00:00Z')
type Keys = NonNullable<MappingStatus['configuredAddresses']>

function host(...addresses: string[]): HostInfo {
  return {interfaces: [{name: 'ext0', addresses: addresses.map((a) => ({address: a as Ipv4, prefixLength: 24}))}]}
}

function verdict(fields: Partial<MappingVerdict> = {}): MappingVerdict {
  return {namespace: 'default', name: 'web', generation: 3, valid: true, invalid: 'no', serviceVIP: '10.96.0.20' as Ipv4, configuredAddresses: {}, notLocalAddresses: [], ...fields}
}

function mapping(status: MappingStatus): MappingResource {
  return {metadata: {namespace: 'default', name: 'web', generation: 3, resourceVersion: '7'}, spec: {}, status}
}

const live = (...hosts: string[]): LiveHosts => ({hosts: new Set(hosts)})
const ready = (status: MappingStatus) => status.conditions!.find((c) => c.type === 'Ready')!

describe('stale status keys', function () {
  describe('isLiveKey', function () {
    const cases: {desc: string; entry: {host?: string} | undefined; live: LiveHosts | undefined; want: boolean}[] = [
      {desc: 'a key of a host whose Lease is current', entry: {host: 'edge-2'}, live: live('edge-1', 'edge-2'), want: true},
      {desc: 'a key of a host whose Lease expired or never existed', entry: {host: 'edge-9'}, live: live('edge-1', 'edge-2'), want: false},
      {desc: 'a key with no host (the Go controller)', entry: {}, live: live('edge-1'), want: false},
      {desc: 'a key with no host, liveness unknown', entry: {}, live: undefined, want: false},
      {desc: 'a key of a host, liveness unknown (no Lease read yet)', entry: {host: 'edge-9'}, live: undefined, want: true},
      {desc: 'no entry', entry: undefined, live: live('edge-1'), want: false},
    ]
    for (const {desc, entry, live: hosts, want} of cases) {
      it(`${want ? 'live' : 'stale'}: ${desc}`, function () {
        expect(isLiveKey(entry, hosts)).to.equal(want)
      })
    }
  })

  describe('removesStaleKeys', function () {
    const cases: {desc: string; live: LiveHosts | undefined; hostName: string | undefined; want: boolean}[] = [
      {desc: 'the lowest-named live host', live: live('edge-2', 'edge-1', 'edge-3'), hostName: 'edge-1', want: true},
      {desc: 'another live host', live: live('edge-2', 'edge-1'), hostName: 'edge-2', want: false},
      {desc: 'a host whose own Lease is not among the live ones', live: live('edge-2'), hostName: 'edge-1', want: false},
      {desc: 'liveness unknown', live: undefined, hostName: 'edge-1', want: false},
      {desc: 'an instance without a host name', live: live('edge-1'), hostName: undefined, want: false},
    ]
    for (const {desc, live: hosts, hostName, want} of cases) {
      it(`${want ? 'removes' : 'leaves'}: ${desc}`, function () {
        expect(removesStaleKeys(hosts, hostName)).to.equal(want)
      })
    }
  })

  describe('desiredStatus with live hosts', function () {
    const goKey = {'198.18.0.50': {podIPs: ['198.19.0.1']}}
    const deadKey = {'198.18.0.60': {podIPs: ['198.19.0.1'], host: 'edge-0'}}
    const liveKey = {'198.18.0.70': {podIPs: ['198.19.0.1'], host: 'edge-3'}}
    const cases: {desc: string; keys: Keys; hostName: string; removed: string[]; ready: [string, string]}[] = [
      {desc: 'the lowest live host removes a Go key and a dead host\'s key', keys: {...goKey, ...deadKey, ...liveKey}, hostName: 'edge-1', removed: ['198.18.0.50', '198.18.0.60'], ready: ['True', 'serving on 198.18.0.70']},
      {desc: 'another live host leaves them, and Ready ignores them', keys: {...goKey, ...deadKey, ...liveKey}, hostName: 'edge-2', removed: [], ready: ['True', 'serving on 198.18.0.70']},
      {desc: 'only stale keys: Ready is False', keys: {...goKey, ...deadKey}, hostName: 'edge-2', removed: [], ready: ['False', 'none of its addresses is on the external interfaces of a smartnat host']},
      {desc: 'only stale keys, removed by the lowest live host', keys: {...goKey, ...deadKey}, hostName: 'edge-1', removed: ['198.18.0.50', '198.18.0.60'], ready: ['False', 'none of its addresses is on the external interfaces of a smartnat host']},
    ]
    for (const {desc, keys, hostName, removed, ready: want} of cases) {
      it(desc, function () {
        const {status, patch} = desiredStatus(mapping({invalid: 'no', configuredAddresses: keys}), verdict(), new Set<string>(), T0, hostName, live('edge-1', 'edge-2', 'edge-3'))
        const nulls = Object.entries((patch?.configuredAddresses ?? {}) as Record<string, unknown>).filter(([, value]) => value === null).map(([a]) => a)
        expect(nulls).to.deep.equal(removed)
        expect(Object.keys(status.configuredAddresses ?? {})).to.deep.equal(Object.keys(keys).filter((a) => !removed.includes(a)))
        expect([ready(status).status, ready(status).message]).to.deep.equal(want)
      })
    }

    it('rewrites a Go key of an address it serves as its own, marked with its host', function () {
      const {status, patch} = desiredStatus(
        mapping({invalid: 'no', configuredAddresses: {'198.18.0.10': {podIPs: []}}}),
        verdict({configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1' as Ipv4]}}}),
        ownAddresses(host('198.18.0.10')),
        T0,
        'edge-2',
        live('edge-1', 'edge-2'),
      )
      expect(status.configuredAddresses).to.deep.equal({'198.18.0.10': {podIPs: ['198.19.0.1'], host: 'edge-2'}})
      expect((patch!.configuredAddresses as Keys)['198.18.0.10']).to.deep.equal({podIPs: ['198.19.0.1'], host: 'edge-2'})
    })

    it('counts no Go key towards Ready before any Lease was read', function () {
      const {status} = desiredStatus(mapping({invalid: 'no', configuredAddresses: goKey}), verdict(), new Set<string>(), T0, 'edge-1')
      expect(ready(status)).to.include({status: 'False', reason: 'NoLocalAddress'})
    })

    it('writes nothing once the stale keys are gone and Ready says so', function () {
      const first = desiredStatus(mapping({invalid: 'no', configuredAddresses: {...goKey, ...liveKey}}), verdict(), new Set<string>(), T0, 'edge-1', live('edge-1', 'edge-3'))
      expect(desiredStatus(mapping(first.status), verdict(), new Set<string>(), T0, 'edge-1', live('edge-1', 'edge-3')).patch).to.equal(undefined)
    })
  })

  describe("this host's keys", function () {
    /** This host's addresses, counting each time they are all gone through. */
    class CountedAddresses extends Set<string> {
      walks = 0
      override [Symbol.iterator](): SetIterator<string> {
        this.walks++
        return super[Symbol.iterator]()
      }
    }

    it('removes the key it wrote for an address it lost, telling its keys without going through all its addresses', function () {
      const own = new CountedAddresses(Array.from({length: 1000}, (_, i) => `198.18.${i >> 8}.${i & 255}`))
      const keys = {'198.19.9.9': {podIPs: ['10.244.0.5'], host: 'edge-1'}, '198.18.0.7': {podIPs: ['10.244.0.5'], host: 'edge-1'}}
      const served = verdict({configuredAddresses: {'198.18.0.7': {podIPs: ['10.244.0.5' as Ipv4]}}})
      const {status, patch} = desiredStatus(mapping({invalid: 'no', configuredAddresses: keys}), served, own, T0, 'edge-1', live('edge-1'))
      expect(patch!.configuredAddresses).to.deep.equal({'198.19.9.9': null})
      expect(Object.keys(status.configuredAddresses!)).to.deep.equal(['198.18.0.7'])
      // A copy of the host's addresses for each Mapping cost the addresses times the Mappings in a status round.
      expect(own.walks).to.equal(0)
    })
  })

  describe('a Mapping being deleted', function () {
    it('removes this host\'s key, keeps invalid, serviceVIP and Valid, and says why in Ready', function () {
      const valid = {type: 'Valid' as const, status: 'True' as const, reason: 'Valid', message: 'spec is valid and its Service resolves', lastTransitionTime: '2024-01-01T00:00:00Z'}
      const current = mapping({invalid: 'no', serviceVIP: '10.96.0.20', configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1'], host: 'edge-1'}}, conditions: [valid]})
      const since = '2024-12-31T23:59:00Z'
      const deleting = verdict({valid: false, invalid: `being deleted since ${since}; no longer served`, serviceVIP: undefined, deleting: since})
      const {status, patch} = desiredStatus(current, deleting, ownAddresses(host('198.18.0.10')), T0, 'edge-1', live('edge-1'))
      expect(patch!.configuredAddresses).to.deep.equal({'198.18.0.10': null})
      expect(patch).to.not.have.any.keys('invalid', 'serviceVIP')
      expect(status).to.include({invalid: 'no', serviceVIP: '10.96.0.20'})
      expect(status.conditions!.find((c) => c.type === 'Valid')).to.deep.equal(valid)
      expect(ready(status)).to.include({status: 'False', reason: 'Deleting', message: `being deleted since ${since}; no longer served`})
    })
  })
})
