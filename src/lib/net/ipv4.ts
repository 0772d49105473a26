/** IPv4 addresses and prefixes: the one address type of smartnat. */

/** An IPv4 address in canonical dotted-quad form, validated. */
export type Ipv4 = string & {readonly __brand: 'Ipv4'}

/** An IPv4 prefix in canonical `network/length` form (host bits cleared), validated. */
export type Cidr = string & {readonly __brand: 'Cidr'}

/** Parses a dotted-quad IPv4 address; returns undefined when it is not one. */
export function parseIpv4(text: unknown): Ipv4 | undefined {
  // The canonical form is the only one accepted (no leading zeros), so a valid text is its own result.
  return typeof text === 'string' && dottedQuadValue(text) !== undefined ? (text as Ipv4) : undefined
}

const DOT = 46
const ZERO = 48
const NINE = 57

/**
 * The numeric value of an address in canonical dotted-quad form (four octets 0..255, no leading
 * zeros), or undefined for any other text. Scans the characters once: addresses are parsed and
 * compared in every sort of the plan, so this must not allocate.
 */
function dottedQuadValue(text: string): number | undefined {
  let value = 0
  let octets = 0
  let octet = 0
  let digits = 0
  for (let i = 0; i <= text.length; i++) {
    const c = i === text.length ? DOT : text.charCodeAt(i)
    if (c === DOT) {
      if (digits === 0 || octet > 255 || ++octets > 4) return undefined
      value = value * 256 + octet
      octet = 0
      digits = 0
    } else if (c >= ZERO && c <= NINE) {
      // A leading zero is allowed only as the whole octet.
      if (digits === 1 && octet === 0) return undefined
      if (++digits > 3) return undefined
      octet = octet * 10 + (c - ZERO)
    } else {
      return undefined
    }
  }
  return octets === 4 ? value : undefined
}

export function ipv4ToInt(ip: Ipv4): number {
  const value = dottedQuadValue(ip)
  if (value !== undefined) return value
  const [a, b, c, d] = ip.split('.').map(Number) as [number, number, number, number]
  return ((a << 24) | (b << 16) | (c << 8) | d) >>> 0
}

export function intToIpv4(n: number): Ipv4 {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.') as Ipv4
}

export function prefixMask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0
}

export type CidrParse = {ok: true; cidr: Cidr} | {ok: false; reason: string}

/** Parses `a.b.c.d/len` or a bare address (meaning /32); host bits are cleared. */
export function parseCidr(text: unknown): CidrParse {
  if (typeof text !== 'string') return {ok: false, reason: 'must be a string like 203.0.113.0/24'}
  const slash = text.indexOf('/')
  const addressText = slash === -1 ? text : text.slice(0, slash)
  const address = parseIpv4(addressText)
  if (!address) return {ok: false, reason: `"${addressText}" is not an IPv4 address`}
  if (slash === -1) return {ok: true, cidr: `${address}/32` as Cidr}
  const lengthText = text.slice(slash + 1)
  if (!/^(3[0-2]|[12]?\d)$/.test(lengthText)) return {ok: false, reason: 'prefix length must be 0..32'}
  const length = Number(lengthText)
  const network = intToIpv4((ipv4ToInt(address) & prefixMask(length)) >>> 0)
  return {ok: true, cidr: `${network}/${length}` as Cidr}
}

export function cidrParts(cidr: Cidr): {network: Ipv4; length: number} {
  const slash = cidr.indexOf('/')
  if (slash === -1) return {network: cidr as string as Ipv4, length: NaN}
  return {network: cidr.slice(0, slash) as Ipv4, length: Number(cidr.slice(slash + 1))}
}

export function cidrContains(cidr: Cidr, ip: Ipv4): boolean {
  const {network, length} = cidrParts(cidr)
  const mask = prefixMask(length)
  return ((ipv4ToInt(ip) & mask) >>> 0) === ipv4ToInt(network)
}

/** Orders addresses numerically, the way people read them. */
export function compareIpv4(a: Ipv4, b: Ipv4): number {
  return ipv4ToInt(a) - ipv4ToInt(b)
}

/** `items` ordered numerically by an address each holds, stably; each address is converted once, not once per comparison. */
export function sortByIpv4<T>(items: readonly T[], addressOf: (item: T) => Ipv4): T[] {
  const keyed = items.map((item) => ({item, key: ipv4ToInt(addressOf(item))}))
  keyed.sort((a, b) => a.key - b.key)
  return keyed.map(({item}) => item)
}

export function compareCidr(a: Cidr, b: Cidr): number {
  const pa = cidrParts(a)
  const pb = cidrParts(b)
  return compareIpv4(pa.network, pb.network) || pa.length - pb.length
}
