import {expect} from 'chai'
import {parseFloatingAddresses, withFloatingAddresses} from '../../src/lib/plan/floating.js'
import type {HostInfo} from '../../src/lib/plan/model.js'
import {ownAddresses} from '../../src/lib/sync/status.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'

const ip = (text: string) => text as Ipv4

describe('parseFloatingAddresses', () => {
  it('reads IFACE=ADDRESS/LENGTH entries, comma-separated, spaces and empty entries ignored', () => {
    expect(parseFloatingAddresses('eth1=198.18.0.10/24, eth2=198.18.1.10/25,')).to.deep.equal([
      {interface: 'eth1', address: '198.18.0.10', prefixLength: 24},
      {interface: 'eth2', address: '198.18.1.10', prefixLength: 25},
    ])
  })

  const refused: [string, string][] = [
    ['198.18.0.10/24', 'floating address "198.18.0.10/24": names no interface; expected IFACE=ADDRESS/LENGTH, e.g. eth1=198.18.0.10/24'],
    ['eth1=198.18.0.10', 'floating address "eth1=198.18.0.10": has no prefix length; expected IFACE=ADDRESS/LENGTH, e.g. eth1=198.18.0.10/24'],
    ['eth1=198.18.0.300/24', 'floating address "eth1=198.18.0.300/24": "198.18.0.300" is not an IPv4 address; expected IFACE=ADDRESS/LENGTH, e.g. eth1=198.18.0.10/24'],
    ['eth1=198.18.0.10/33', 'floating address "eth1=198.18.0.10/33": prefix length must be 0..32; expected IFACE=ADDRESS/LENGTH, e.g. eth1=198.18.0.10/24'],
    ['eth 1=198.18.0.10/24', 'floating address "eth 1=198.18.0.10/24": interface name "eth 1" cannot be used in rules'],
    ['eth1=198.18.0.10/24,eth2=198.18.0.10/24', 'floating address "eth2=198.18.0.10/24": is listed twice; expected IFACE=ADDRESS/LENGTH, e.g. eth1=198.18.0.10/24'],
  ]
  for (const [text, message] of refused) {
    it(`refuses ${JSON.stringify(text)}`, () => {
      expect(() => parseFloatingAddresses(text)).to.throw(message)
    })
  }
})

describe('withFloatingAddresses', () => {
  const floating = parseFloatingAddresses('eth1=198.18.0.10/24')
  const standby: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: ip('198.18.0.2'), prefixLength: 24}]}]}

  it('adds a floating address not assigned here after the interface\'s own, and lists it as the peer\'s now', () => {
    expect(withFloatingAddresses(standby, floating)).to.deep.equal({
      interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.2', prefixLength: 24}, {address: '198.18.0.10', prefixLength: 24}]}],
      floatingStandby: ['198.18.0.10'],
    })
  })

  it('gives the active host the same interfaces as the standby, whatever prefix and position keepalived gave the address', () => {
    const active: HostInfo = {
      interfaces: [{name: 'eth1', addresses: [{address: ip('198.18.0.10'), prefixLength: 32}, {address: ip('198.18.0.2'), prefixLength: 24}]}],
    }
    const planned = withFloatingAddresses(active, floating)
    expect(planned.interfaces).to.deep.equal(withFloatingAddresses(standby, floating).interfaces)
    expect(planned).to.not.have.property('floatingStandby')
  })

  it('leaves a floating address this host holds to its status writes, and one the peer holds to the peer', () => {
    expect([...ownAddresses(withFloatingAddresses(standby, floating))]).to.deep.equal(['198.18.0.2'])
    const active: HostInfo = {interfaces: [{name: 'eth1', addresses: [...standby.interfaces[0]!.addresses, {address: ip('198.18.0.10'), prefixLength: 24}]}]}
    expect([...ownAddresses(withFloatingAddresses(active, floating))]).to.deep.equal(['198.18.0.2', '198.18.0.10'])
  })

  it('leaves the host as it is without floating addresses', () => {
    expect(withFloatingAddresses(standby, [])).to.equal(standby)
  })

  it('refuses a floating address outside its interface\'s own subnets, or on an interface that is not external', () => {
    const message = (where: string) =>
      `floating address 198.18.0.10/24 on ${where}: ${where} has no address of its own in that subnet, which reply routes need as their source on the standby`
    const elsewhere: HostInfo = {interfaces: [{name: 'eth1', addresses: [{address: ip('198.18.5.2'), prefixLength: 24}]}]}
    expect(() => withFloatingAddresses(elsewhere, floating)).to.throw(message('eth1'))
    expect(() => withFloatingAddresses(standby, parseFloatingAddresses('eth9=198.18.0.10/24'))).to.throw(message('eth9'))
  })
})
