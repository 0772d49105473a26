/**
 * A 53-bit hash of a text's UTF-16 code units, exact as a JavaScript number: for telling texts
 * apart where holding them would cost memory (nftables/parse.ts). Two lanes of FNV-1a with
 * different primes, each finished with MurmurHash3's 32-bit mix; two different texts share a hash
 * with a chance of about one in 2^53.
 */
export function textHash(text: string): number {
  let a = 0x811c9dc5
  let b = 0x2f1b3c4d
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
  }
  return (mix(a) >>> 0) * 0x200000 + (mix(b) >>> 11)
}

function mix(h: number): number {
  h ^= h >>> 16
  h = Math.imul(h, 0x85ebca6b)
  h ^= h >>> 13
  h = Math.imul(h, 0xc2b2ae35)
  return h ^ (h >>> 16)
}
