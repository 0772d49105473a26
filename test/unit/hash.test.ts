/** The short hashes in owned chain and set names (src/lib/net/hash.ts): SHA-256 of the text's UTF-8, as node:crypto computes it. */
import {createHash} from 'node:crypto'

import {expect} from 'chai'

import {cachedHashName, shortHash} from '../../src/lib/net/hash.js'

const nodeSha256 = (text: string) => createHash('sha256').update(text).digest('hex')

describe('shortHash', () => {
  it('is node:crypto’s SHA-256 of the text, cut to the length asked, across block boundaries and beyond ASCII, before and after it loads node:crypto', () => {
    const texts = ['', 'a', 'default/mapping-echo-service', 'é', 'ü-日本-🙂', 'x'.repeat(55), 'x'.repeat(56), 'x'.repeat(64), 'y'.repeat(1000)]
    let seed = 19
    const random = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
    // More than the hashes made in JavaScript before node:crypto takes over.
    for (let i = 0; i < 1200; i++) {
      const length = Math.floor(random() * 130)
      texts.push(Array.from({length}, () => String.fromCodePoint(random() < 0.9 ? 32 + Math.floor(random() * 95) : 0xa0 + Math.floor(random() * 0x2000))).join(''))
    }
    for (const text of texts) {
      expect(shortHash(text, 64), JSON.stringify(text)).to.equal(nodeSha256(text))
      expect(shortHash(text)).to.equal(nodeSha256(text).slice(0, 8))
    }
    expect(cachedHashName('SNM-', 'default/echo', 10)).to.equal(`SNM-${nodeSha256('default/echo').slice(0, 10)}`)
  })
})
