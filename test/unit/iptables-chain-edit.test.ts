import {expect} from 'chai'
import {chainEdit} from '../../src/lib/backend/iptables/diff.js'

const CHAIN = 'SNM-A-1a2b3c4d'
const rule = (port: number, target = '198.19.1.10') => `-A ${CHAIN} -p tcp -m tcp --dport ${port} -m comment --comment "default/web tcp/${port}" -j DNAT --to-destination ${target}:${port}`
const chain = (...ports: number[]) => ({name: CHAIN, rules: ports.map((port) => rule(port))})

describe('chainEdit (an address chain edited rule by rule)', () => {
  it('deletes the rules that go and inserts the new ones at their places in the desired chain', () => {
    expect(chainEdit(chain(22, 80, 443, 8080), chain(80, 443, 5000))).to.deep.equal({
      name: CHAIN,
      delete: [rule(5000)],
      insert: [
        {position: 1, rule: rule(22)},
        {position: 4, rule: rule(8080)},
      ],
    })
  })

  it('replaces a retargeted rule by deleting it and inserting the new one where it was', () => {
    const desired = chain(80, 443)
    desired.rules[1] = rule(443, '198.19.1.99')
    expect(chainEdit(desired, chain(80, 443))).to.deep.equal({name: CHAIN, delete: [rule(443)], insert: [{position: 2, rule: desired.rules[1]}]})
  })

  it('leaves the chain to be rewritten when the kept rules change order, too many change, a rule repeats, or it is not an address chain', () => {
    const ports = Array.from({length: 20}, (_, i) => 1000 + i)
    expect(chainEdit(chain(443, 80), chain(80, 443))).to.equal(undefined)
    expect(chainEdit(chain(...ports.slice(0, 10)), chain(...ports.slice(10)))).to.equal(undefined)
    expect(chainEdit(chain(80, 80, 443), chain(80, 443))).to.equal(undefined)
    expect(chainEdit({...chain(80, 443), name: 'SNM-PREROUTING'}, {...chain(80), name: 'SNM-PREROUTING'})).to.equal(undefined)
  })
})
