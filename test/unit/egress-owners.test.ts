/** The index of egress entries by pod both renderers keep (src/lib/backend/egress-owners.ts). */
import {expect} from 'chai'
import {collectGarbage} from '../../src/lib/app/heap.js'
import {EgressOwners} from '../../src/lib/backend/egress-owners.js'
import {intToIpv4, ipv4ToInt, type Ipv4} from '../../src/lib/net/ipv4.js'
import type {NatEgress} from '../../src/lib/plan/model.js'

const PODS = 20_000

function egressEntries(): NatEgress[] {
  const base = ipv4ToInt('198.19.128.0' as Ipv4)
  // One entry per address listing two pods, as the 10,000-Mapping benchmark has.
  return Array.from({length: PODS / 2}, (_, i) => ({
    address: intToIpv4(ipv4ToInt('198.18.0.0' as Ipv4) + i),
    interface: 'ext1',
    podIPs: [intToIpv4(base + 2 * i), intToIpv4(base + 2 * i + 1)],
  })) as unknown as NatEgress[]
}

function liveBytes(): number {
  collectGarbage()
  collectGarbage()
  return process.memoryUsage().heapUsed
}

describe('EgressOwners', () => {
  it('keeps a pod listed by one entry without a list, so without the room an array grown by push keeps', () => {
    const egress = egressEntries()
    const before = liveBytes()
    const owners = new EgressOwners(egress)
    const perPod = (liveBytes() - before) / PODS
    // A list grown from empty by one push holds room for 17 entries: about 150 bytes a pod more; a
    // list of one, 56 bytes more (measured: 102 bytes a pod with lists of one, 46 without).
    expect(perPod).to.be.below(75)
    expect(owners.owner(egress[0]!.podIPs[0]!)).to.equal(egress[0])
  })

  it('finds the entries of a pod added by an update, and no longer those removed', () => {
    const egress = egressEntries().slice(0, 3)
    const owners = new EgressOwners(egress.slice(0, 2))
    const moved = {...egress[2]!, podIPs: [egress[0]!.podIPs[0]!]}
    owners.update([egress[1]!], [moved])
    expect(owners.owner(egress[0]!.podIPs[0]!)).to.equal(moved)
    expect([...owners.sources(egress[0]!.podIPs[0]!).values()]).to.deep.equal([egress[0]])
    expect(owners.owner(egress[1]!.podIPs[0]!)).to.equal(undefined)
  })
})
