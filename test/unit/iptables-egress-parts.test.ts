import {expect} from 'chai'
import {egressInterfaceSetName, egressSetName} from '../../src/lib/backend/iptables/names.js'
import {renderIptables} from '../../src/lib/backend/iptables/render.js'
import {iptablesParts} from '../../src/lib/backend/iptables/parts.js'
import {ip, manyEgressModel} from './nat-model-fixture.js'

describe('iptables egress sets under status and explain', () => {
  const model = manyEgressModel()
  const parts = iptablesParts(renderIptables(model), model)
  const entry = (set: string, text: string) => parts.find((p) => p.kind === 'set-entry' && p.where === `set ${set}` && p.text === text)

  it('attributes an interface set entry to the Mappings of the egress that decided the pod’s interface', () => {
    expect(entry(egressInterfaceSetName(2), '10.244.0.4')!.mappings).to.deep.equal(['egress/m-198.18.1-39'])
    expect(entry(egressInterfaceSetName(2), '10.244.9.9')!.mappings).to.deep.equal(['egress/m-198.18.1-39'])
    expect(entry(egressInterfaceSetName(1), '10.244.0.1')!.mappings).to.deep.equal(['egress/m-198.18.0-39'])
    expect(entry(egressInterfaceSetName(1), '10.244.0.2')!.mappings).to.deep.equal(['egress/m-198.18.0-20'])
  })

  it('attributes an address set entry to the Mappings of that address', () => {
    expect(entry(egressSetName(ip('198.18.0.21')), '10.244.0.1')!.mappings).to.deep.equal(['egress/m-198.18.0-21'])
  })

  it('keeps the SNAT rules, behind the egress mark, shared', () => {
    const snat = [...parts.filter((p) => p.where === 'nat SNM-SNAT'), parts.find((p) => p.kind === 'chain' && p.text === ':SNM-SNAT')!]
    expect(snat).to.have.length(41)
    expect(snat.every((p) => p.mappings.length === 0)).to.equal(true)
  })
})
