import {sha256} from '@noble/hashes/sha2.js'
import {bytesToHex, utf8ToBytes} from '@noble/hashes/utils.js'

/**
 * node:crypto, loaded when first used: loading it (pbkdf2, hkdf, ciphers, x509, ...) took about a
 * tenth of a dry-run sync's start, for names that need only SHA-256 (shortHash).
 */
export function crypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto')
}

/**
 * Hashes made in JavaScript before node:crypto is loaded for the rest: a render of a few Mappings
 * never loads it, one of thousands hashes at native speed (twice the JavaScript's) after the first.
 */
const JS_HASHES = 1000
let hashes = 0

/** A stable short id of a text (lowercase hex of its UTF-8 SHA-256), for owned chain and set names. */
export function shortHash(text: string, length = 8): string {
  const hex = ++hashes <= JS_HASHES ? bytesToHex(sha256(utf8ToBytes(text))) : crypto().createHash('sha256').update(text).digest('hex')
  return hex.slice(0, length)
}

/**
 * Names hashed before, by prefix and text: every sync renders every direct-mode group again, and a
 * sha256 for each of 40,000 chains costs a large share of the render. Emptied when full.
 */
const hashed = new Map<string, string>()
const MAX_HASHED = 200_000

/** `prefix` followed by `length` hex digits of the hash of `text`, remembered for the next render. */
export function cachedHashName(prefix: string, text: string, length: number): string {
  const key = `${prefix}${length} ${text}`
  let name = hashed.get(key)
  if (name === undefined) {
    if (hashed.size >= MAX_HASHED) hashed.clear()
    name = `${prefix}${shortHash(text, length)}`
    hashed.set(key, name)
  }
  return name
}
