/** The 53-bit text hash the nftables read counts expected elements by (src/lib/net/text-hash.ts). */
import {expect} from 'chai'
import {textHash} from '../../src/lib/net/text-hash.js'

describe('textHash', () => {
  it('is the same for the same text and an integer below 2^53', () => {
    for (const text of ['', 'a', '198.18.0.10 . tcp . 80 comment "default/web tcp/80" : 198.19.100.10 . 8080', 'é日本😀']) {
      const hash = textHash(text)
      expect(hash, text).to.equal(textHash(`${text}`.slice(0)))
      expect(Number.isSafeInteger(hash) && hash >= 0, text).to.equal(true)
    }
  })

  it('tells apart 300,000 elements that differ in one address, port or character of a comment', () => {
    const seen = new Set<number>()
    for (let i = 0; i < 100_000; i++) {
      const address = `198.${18 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}`
      seen.add(textHash(`${address} . tcp . 80 comment "ns/web tcp/80" : 198.19.100.10 . 8080`))
      seen.add(textHash(`198.18.0.10 . tcp . ${i % 65536} comment "ns/web-${i >> 16} tcp/80" : 198.19.100.10 . 8080`))
      seen.add(textHash(`eth2 . ${address} comment "team/app-${i}" : 198.18.1.10`))
    }
    expect(seen.size).to.equal(300_000)
  })
})
