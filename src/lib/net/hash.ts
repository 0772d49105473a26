/**
 * node:crypto, loaded at the first hash: with the modules it loads, about 2.5 ms of a start, and a
 * status of a host without Mappings hashes nothing.
 */
export function crypto(): typeof import('node:crypto') {
  return process.getBuiltinModule('node:crypto')
}

/** A stable short id of a text (lowercase hex), for owned chain and set names. */
export function shortHash(text: string, length = 8): string {
  return crypto().createHash('sha256').update(text).digest('hex').slice(0, length)
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
