import {expect} from 'chai'
import type {ServiceResource} from '../../src/lib/mapping/types.js'
import {NewerStatuses} from '../../src/lib/sync/newer-statuses.js'

const svc = (name: string, version: string | undefined, ip?: string): ServiceResource => ({
  metadata: {namespace: 'shop', name, resourceVersion: version},
  ...(ip ? {status: {loadBalancer: {ingress: [{ip}]}}} : {}),
})
const shown = (services: readonly ServiceResource[]) => services.map((s) => `${s.metadata.name}@${s.metadata.resourceVersion}${s.status?.loadBalancer?.ingress?.[0]?.ip ? ` ${s.status.loadBalancer.ingress[0].ip}` : ''}`)

describe('newer Service versions than the cache shows', function () {
  it('stands in while the cache shows an older version, and is dropped once it shows that one or a newer', function () {
    const newer = new NewerStatuses(10_000)
    newer.note(svc('a', '12', '198.18.0.10'), '11', 0)
    expect(shown(newer.apply([svc('a', '11')], 0))).to.deep.equal(['a@12 198.18.0.10'])
    expect(shown(newer.apply([svc('a', '15')], 0))).to.deep.equal(['a@15'])
    expect(newer.size).to.equal(0)
  })

  it('with versions that are not integers, stands in only while the cache shows exactly the superseded one', function () {
    const newer = new NewerStatuses(10_000)
    newer.note(svc('a', 'v-b', '198.18.0.10'), 'v-a', 0)
    expect(shown(newer.apply([svc('a', 'v-a')], 0))).to.deep.equal(['a@v-b 198.18.0.10'])
    expect(shown(newer.apply([svc('a', 'v-c')], 0))).to.deep.equal(['a@v-c'])
  })

  it('counts a listed Service the cache lacks for a while, and forgets one deleted from the cache', function () {
    const newer = new NewerStatuses(10_000)
    newer.noteListed([svc('a', '5', '198.18.0.10'), svc('b', '7', '198.18.0.11'), svc('c', '3')], [svc('b', '6'), svc('c', '3')], 0)
    expect(newer.size).to.equal(2)
    expect(shown(newer.apply([svc('b', '6'), svc('c', '3')], 9_999))).to.deep.equal(['b@7 198.18.0.11', 'c@3', 'a@5 198.18.0.10'])
    expect(shown(newer.apply([svc('c', '3')], 10_000))).to.deep.equal(['c@3'])
    expect(newer.size).to.equal(0)
  })
})
