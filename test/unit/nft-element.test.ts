import {expect} from 'chai'
import {diffNftState} from '../../src/lib/backend/nftables/diff.js'
import {elementsPayload} from '../../src/lib/backend/nftables/payloads.js'
import {parseNftJson} from '../../src/lib/backend/nftables/parse.js'
import {elementComment, elementKey, elementParts, printElement, type ElementParts, type ElementTypes} from '../../src/lib/backend/nftables/syntax.js'
import type {NftState, NftTable} from '../../src/lib/backend/nftables/types.js'

const ENDPOINTS: ElementTypes = {keyType: ['ipv4_addr', 'inet_proto', 'inet_service'], dataType: ['ipv4_addr', 'inet_service']}
const SNAT: ElementTypes = {keyType: ['ifname', 'ipv4_addr'], dataType: ['ipv4_addr']}
const DIRECT: ElementTypes = {keyType: ['ipv4_addr', 'inet_proto', 'inet_service'], dataType: ['verdict']}
const POD: ElementTypes = {keyType: ['ipv4_addr']}

describe('nftables elements as printed strings', () => {
  const cases: [string, ElementTypes, ElementParts, string, string][] = [
    ['a map element', ENDPOINTS, {key: ['198.18.0.10', 'tcp', '80'], value: ['198.19.100.10', '8080'], comment: 'default/web tcp/80'}, '198.18.0.10 . tcp . 80 comment "default/web tcp/80" : 198.19.100.10 . 8080', '198.18.0.10 . tcp . 80'],
    ['a key with a quoted interface', SNAT, {key: ['eth2', '10.244.1.5'], value: ['198.18.1.10'], comment: 'shop/web shop/api'}, '"eth2" . 10.244.1.5 comment "shop/web shop/api" : 198.18.1.10', '"eth2" . 10.244.1.5'],
    ['a verdict, one part with a space', DIRECT, {key: ['198.18.0.10', 'udp', '53'], value: ['goto pick_2'], comment: 'lab/dns udp/53'}, '198.18.0.10 . udp . 53 comment "lab/dns udp/53" : goto pick_2', '198.18.0.10 . udp . 53'],
    ['a set element', POD, {key: ['10.244.1.5'], comment: 'shop/web'}, '10.244.1.5 comment "shop/web"', '10.244.1.5'],
    ['an element without a comment', ENDPOINTS, {key: ['198.18.0.10', 'tcp', '80'], value: ['198.19.100.10', '8080']}, '198.18.0.10 . tcp . 80 : 198.19.100.10 . 8080', '198.18.0.10 . tcp . 80'],
    ['a bare key', POD, {key: ['10.244.1.5']}, '10.244.1.5', '10.244.1.5'],
    ['a comment that looks like syntax', ENDPOINTS, {key: ['198.18.0.10', 'tcp', '80'], value: ['198.19.100.10', '80'], comment: 'a : b . c comment d'}, '198.18.0.10 . tcp . 80 comment "a : b . c comment d" : 198.19.100.10 . 80', '198.18.0.10 . tcp . 80'],
  ]
  for (const [name, types, parts, text, key] of cases) {
    it(`${name}: printed, keyed and taken apart again`, () => {
      const element = printElement(types, parts)
      expect(element).to.equal(text)
      expect(elementKey(types, element)).to.equal(key)
      expect(elementParts(types, element)).to.deep.equal(parts)
      expect(elementComment(types, element)).to.equal(parts.comment)
    })
  }

  it('refuses a rendered comment nft cannot quote', () => {
    expect(() => printElement(POD, {key: ['10.244.1.5'], comment: 'say "hi"'})).to.throw('cannot quote "say \\"hi\\"" for nft')
  })

  it('reads back a comment nft cannot quote, and the diff replaces that element by its key', () => {
    const comment = 'edited "by hand" \\ here'
    const listing = {
      nftables: [
        {table: {family: 'ip', name: 'smartnat'}},
        {set: {family: 'ip', name: 'egress_2', table: 'smartnat', type: 'ipv4_addr', elem: [{elem: {val: '10.244.1.5', comment}}]}},
      ],
    }
    const read = parseNftJson(JSON.stringify(listing))
    const [element] = read.sets[0]!.elements
    expect(element).to.equal(`10.244.1.5 comment ${JSON.stringify(comment)}`)
    expect(elementParts(POD, element!)).to.deep.equal({key: ['10.244.1.5'], comment})

    const desired: NftTable = {sets: [{...read.sets[0]!, elements: [printElement(POD, {key: ['10.244.1.5'], comment: 'shop/web'})]}], chains: []}
    const state = (table: NftTable): NftState => ({table, ipRules: [], routes: []})
    const change = diffNftState(state(desired), state(read)).table
    expect(change.kind).to.equal('elements')
    if (change.kind !== 'elements') return
    expect(elementsPayload(change.sets)).to.equal(
      'delete element ip smartnat egress_2 { 10.244.1.5 }\nadd element ip smartnat egress_2 { 10.244.1.5 comment "shop/web" }\n',
    )
  })
})
