import {expect} from 'chai'
import fc from 'fast-check'
import {cidrContains, compareIpv4, ipv4ToInt, parseCidr, parseIpv4, type Ipv4} from '../../src/lib/net/ipv4.js'

/** The definition of the canonical form: four decimal octets 0..255 without leading zeros. */
const CANONICAL = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/

describe('ipv4', () => {
  const addresses: [unknown, string | undefined][] = [
    ['198.18.0.1', '198.18.0.1'],
    ['255.255.255.255', '255.255.255.255'],
    ['01.2.3.4', undefined],
    ['1.2.3', undefined],
    ['1.2.3.256', undefined],
    ['1.2.3.4\n', undefined],
    [' 1.2.3.4', undefined],
    [42, undefined],
  ]
  for (const [input, want] of addresses) {
    it(`parseIpv4(${JSON.stringify(input)}) is ${want}`, () => expect(parseIpv4(input)).to.equal(want))
  }

  const cidrs: [string, string][] = [
    ['10.0.0.5', 'ok 10.0.0.5/32'],
    ['10.0.0.5/24', 'ok 10.0.0.0/24'],
    ['0.0.0.0/0', 'ok 0.0.0.0/0'],
    ['10.0.0.0/33', 'prefix length must be 0..32'],
    ['10.0.0.0/', 'prefix length must be 0..32'],
    ['10.0.0.0/024', 'prefix length must be 0..32'],
    ['300.0.0.0/8', '"300.0.0.0" is not an IPv4 address'],
  ]
  for (const [input, want] of cidrs) {
    it(`parseCidr(${input}) -> ${want}`, () => {
      const got = parseCidr(input)
      expect(got.ok ? `ok ${got.cidr}` : got.reason).to.equal(want)
    })
  }

  it('accepts exactly the canonical dotted quads, whatever the text', () => {
    const octet = fc.oneof(fc.integer({min: 0, max: 300}).map(String), fc.stringMatching(/^[0-9]{0,4}$/), fc.constantFrom('', 'a', ' ', '-1', '+1'))
    const text = fc.oneof(
      fc.array(octet, {minLength: 1, maxLength: 6}).map((parts) => parts.join('.')),
      fc.string({maxLength: 20}),
    )
    fc.assert(
      fc.property(text, (candidate) => {
        expect(parseIpv4(candidate)).to.equal(CANONICAL.test(candidate) ? candidate : undefined)
      }),
      {numRuns: 5000},
    )
  })

  it('orders addresses by their numeric value', () => {
    const address = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255))
    fc.assert(
      fc.property(address, address, (a, b) => {
        const value = (parts: number[]) => parts.reduce((n, part) => n * 256 + part, 0)
        expect(ipv4ToInt(a.join('.') as Ipv4)).to.equal(value(a))
        expect(Math.sign(compareIpv4(a.join('.') as Ipv4, b.join('.') as Ipv4))).to.equal(Math.sign(value(a) - value(b)))
      }),
      {numRuns: 2000},
    )
  })

  it('cidrContains', () => {
    const net = parseCidr('198.18.4.0/22')
    if (!net.ok) throw new Error('parse failed')
    expect(cidrContains(net.cidr, parseIpv4('198.18.7.255')!)).to.equal(true)
    expect(cidrContains(net.cidr, parseIpv4('198.18.8.0')!)).to.equal(false)
  })
})
