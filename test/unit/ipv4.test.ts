import {expect} from 'chai'
import {cidrContains, parseCidr, parseIpv4} from '../../src/lib/net/ipv4.js'

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

  it('cidrContains', () => {
    const net = parseCidr('198.18.4.0/22')
    if (!net.ok) throw new Error('parse failed')
    expect(cidrContains(net.cidr, parseIpv4('198.18.7.255')!)).to.equal(true)
    expect(cidrContains(net.cidr, parseIpv4('198.18.8.0')!)).to.equal(false)
  })
})
