import {expect} from 'chai'
import {renderIptables, renderRestoreScripts} from '../../src/lib/backend/iptables/render.js'
import {LineBuffer} from '../../src/lib/net/linebuffer.js'
import {setOptions} from '../../src/lib/backend/iptables/sets.js'
import {
  MAX_CHAIN_NAME,
  MAX_SET_NAME,
  addressChainName,
  egressInterfaceSetName,
  egressSetName,
  isOwnedName,
  tempSetName,
} from '../../src/lib/backend/iptables/names.js'
import type {NatModel} from '../../src/lib/plan/model.js'
import {ip, manyEgressModel, sampleModel} from './nat-model-fixture.js'

const A0 = addressChainName(ip('198.18.0.10'))
const A1 = addressChainName(ip('198.18.1.10'))
const A2 = addressChainName(ip('198.18.2.10'))
const EG = egressSetName(ip('198.18.1.10'))
const EGRESS_2 = egressInterfaceSetName(2)

function chain(model: NatModel, table: 'mangle' | 'nat' | 'filter', name: string): string[] {
  const found = renderIptables(model).tables[table].chains.find((c) => c.name === name)
  if (!found) throw new Error(`no chain ${table}/${name}`)
  return found.rules
}

describe('renderIptables', () => {
  it('dispatches by address, then by port, with a comment naming each Mapping', () => {
    expect(chain(sampleModel(), 'nat', 'SNM-PREROUTING')).to.deep.equal([
      '-A SNM-PREROUTING -m set ! --match-set SNM-ALLOW dst,dst,src -j RETURN',
      '-A SNM-PREROUTING -j MARK --set-xmark 0x80000/0x80000',
      '-A SNM-PREROUTING -i eth1 -j CONNMARK --set-xmark 0x100000/0xff40000',
      '-A SNM-PREROUTING -i eth2 -j CONNMARK --set-xmark 0x200000/0xff40000',
      '-A SNM-PREROUTING -i eth3 -j CONNMARK --set-xmark 0x300000/0xff40000',
      `-A SNM-PREROUTING -d 198.18.0.10/32 -j ${A0}`,
      `-A SNM-PREROUTING -d 198.18.1.10/32 -j ${A1}`,
      `-A SNM-PREROUTING -d 198.18.2.10/32 -j ${A2}`,
    ])
    expect(chain(sampleModel(), 'nat', A0)).to.deep.equal([
      `-A ${A0} -p tcp -m tcp --dport 80 -m comment --comment "default/web tcp/80" -j DNAT --to-destination 198.19.100.10:8080`,
      `-A ${A0} -p tcp -m tcp --dport 443 -m comment --comment "default/web tcp/443" -j DNAT --to-destination 198.19.100.10:8443`,
      `-A ${A0} -p udp -m udp --dport 53 -m comment --comment "default/dns udp/53" -j DNAT --to-destination 198.19.100.11:53`,
    ])
    expect(chain(sampleModel(), 'nat', A1)).to.deep.equal([
      `-A ${A1} -p tcp -m tcp --dport 80 -m comment --comment "shop/web tcp/80" -j DNAT --to-destination 198.19.100.20:80`,
    ])
  })

  it('lists owned chains in render order and one jump per built-in chain', () => {
    const state = renderIptables(sampleModel())
    expect(state.tables.nat.chains.map((c) => c.name)).to.deep.equal(['SNM-PREROUTING', 'SNM-POSTROUTING', 'SNM-SNAT', A0, A1, A2])
    expect(state.tables.nat.jumps).to.deep.equal([
      '-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING',
      '-A POSTROUTING -m comment --comment smartnat -j SNM-POSTROUTING',
    ])
    expect(state.tables.mangle.jumps).to.deep.equal(['-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING'])
    expect(state.tables.filter.jumps).to.deep.equal([
      '-A INPUT -m comment --comment smartnat -j SNM-INPUT',
      '-A FORWARD -m comment --comment smartnat -j SNM-FORWARD',
    ])
    expect(state.tables.filter.chains).to.deep.equal([
      {name: 'SNM-INPUT', rules: ['-A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP']},
      {name: 'SNM-FORWARD', rules: ['-A SNM-FORWARD -m connmark ! --mark 0x0/0xff00000 -j ACCEPT']},
    ])
  })

  it('masquerades marked traffic and SNATs egress through its interface, behind one mark test', () => {
    expect(chain(sampleModel(), 'nat', 'SNM-POSTROUTING')).to.deep.equal([
      '-A SNM-POSTROUTING -m mark --mark 0x80000/0x80000 -j MASQUERADE',
      '-A SNM-POSTROUTING -m connmark --mark 0x40000/0x40000 -j SNM-SNAT',
    ])
    expect(chain(sampleModel(), 'nat', 'SNM-SNAT')).to.deep.equal([`-A SNM-SNAT -o eth2 -m set --match-set ${EG} src -j SNAT --to-source 198.18.1.10`])
    expect(chain(sampleModel(), 'mangle', 'SNM-PREROUTING')).to.deep.equal([
      `-A SNM-PREROUTING -m conntrack --ctstate NEW -m set --match-set ${EGRESS_2} src -j CONNMARK --set-xmark 0x240000/0xff40000`,
      '-A SNM-PREROUTING -m connmark ! --mark 0x0/0xff00000 -m connmark --mark 0x0/0x40000 -m conntrack --ctdir REPLY -j CONNMARK --restore-mark --nfmask 0xff00000 --ctmask 0xff00000',
      '-A SNM-PREROUTING -m connmark --mark 0x40000/0x40000 -m conntrack --ctdir ORIGINAL -j CONNMARK --restore-mark --nfmask 0xff00000 --ctmask 0xff00000',
    ])
  })

  it('marks egress connections with one set lookup per interface, whatever the number of egress addresses', () => {
    const model = manyEgressModel()
    const mangle = chain(model, 'mangle', 'SNM-PREROUTING').filter((r) => r.includes('--ctstate NEW'))
    expect(mangle).to.deep.equal([
      `-A SNM-PREROUTING -m conntrack --ctstate NEW -m set --match-set ${egressInterfaceSetName(1)} src -j CONNMARK --set-xmark 0x140000/0xff40000`,
      `-A SNM-PREROUTING -m conntrack --ctstate NEW -m set --match-set ${egressInterfaceSetName(2)} src -j CONNMARK --set-xmark 0x240000/0xff40000`,
    ])
    expect(chain(model, 'nat', 'SNM-SNAT')).to.have.length(40)
    const sets = new Map(renderIptables(model).sets.map((s) => [s.name, s.entries]))
    // A pod named by egress on both interfaces belongs to the last address's interface (eth2).
    expect(sets.get(egressInterfaceSetName(1))).to.deep.equal(['10.244.0.1', '10.244.0.2', '10.244.0.3'])
    expect(sets.get(egressInterfaceSetName(2))).to.deep.equal(['10.244.0.4', '10.244.9.9'])
  })

  it('with an HA cluster-side address, SNATs marked traffic to it instead of masquerading, behind the same mark test', () => {
    expect(chain({...sampleModel({egress: false}), masqueradeTo: ip('198.18.4.100')}, 'nat', 'SNM-POSTROUTING')).to.deep.equal([
      '-A SNM-POSTROUTING -m mark --mark 0x80000/0x80000 -j SNAT --to-source 198.18.4.100',
    ])
  })

  it('with an HA cluster-side address, drops what reaches the host for that address instead of letting the host answer it', () => {
    // A pod's reply that reaches the new active host before conntrackd committed its connection.
    expect(chain({...sampleModel({egress: false}), masqueradeTo: ip('198.18.4.100')}, 'filter', 'SNM-INPUT')).to.deep.equal([
      '-A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP',
      '-A SNM-INPUT -d 198.18.4.100/32 -j DROP',
    ])
  })

  it('leaves out masquerade and egress when they are off', () => {
    const model = sampleModel({masquerade: false, egress: false})
    expect(chain(model, 'nat', 'SNM-POSTROUTING')).to.deep.equal([])
    expect(renderIptables(model).tables.nat.chains.map((c) => c.name)).to.not.include('SNM-SNAT')
    expect(chain(model, 'nat', 'SNM-PREROUTING').filter((r) => r.includes('MARK --set-xmark 0x80000'))).to.deep.equal([])
    expect(chain(model, 'mangle', 'SNM-PREROUTING').some((r) => r.includes('--ctstate NEW'))).to.equal(false)
    expect(renderIptables(model).sets.map((s) => s.name)).to.deep.equal(['SNM-ALLOW', 'SNM-ENDPOINTS'])
  })

  it('fills the sets in ipset save form: /32 as a bare address, /0 as two halves, sorted', () => {
    const sets = renderIptables(sampleModel()).sets
    expect(sets.map((s) => `${s.name} ${s.type} ${s.options}`)).to.deep.equal([
      'SNM-ALLOW hash:ip,port,net family inet hashsize 1024 maxelem 65536',
      `${EG} hash:ip family inet hashsize 1024 maxelem 65536`,
      `${EGRESS_2} hash:ip family inet hashsize 1024 maxelem 65536`,
      'SNM-ENDPOINTS hash:ip,port family inet hashsize 1024 maxelem 65536',
    ])
    expect(sets[0]!.entries).to.deep.equal([
      '198.18.0.10,tcp:443,0.0.0.0/1',
      '198.18.0.10,tcp:443,128.0.0.0/1',
      '198.18.0.10,tcp:80,0.0.0.0/1',
      '198.18.0.10,tcp:80,128.0.0.0/1',
      '198.18.0.10,udp:53,10.0.0.0/8',
      '198.18.0.10,udp:53,198.18.5.5',
      '198.18.1.10,tcp:80,198.18.7.0/24',
      '198.18.2.10,tcp:80,0.0.0.0/1',
      '198.18.2.10,tcp:80,128.0.0.0/1',
    ])
    expect(sets[1]!.entries).to.deep.equal(['10.244.1.5', '10.244.1.6'])
    expect(sets[2]!.entries).to.deep.equal(['10.244.1.5', '10.244.1.6'])
    expect(sets[3]!.entries).to.deep.equal(['198.18.0.10,tcp:443', '198.18.0.10,tcp:80', '198.18.0.10,udp:53', '198.18.1.10,tcp:80', '198.18.2.10,tcp:80'])
  })

  it('gives interfaces with a table an ip rule and routes; the default-gateway interface gets neither', () => {
    const state = renderIptables(sampleModel())
    expect(state.ipRules).to.deep.equal([
      {priority: 7001, fwmark: '0x100000/0xff00000', table: 7001},
      {priority: 7002, fwmark: '0x200000/0xff00000', table: 7002},
    ])
    expect(state.routes).to.deep.equal([
      {table: 7001, dst: '198.18.0.0/24', dev: 'eth1', src: '198.18.0.10', scope: 'link'},
      {table: 7001, dst: 'default', dev: 'eth1', via: '198.18.0.1'},
      {table: 7002, dst: '198.18.1.0/24', dev: 'eth2', src: '198.18.1.10', scope: 'link'},
      {table: 7002, dst: '198.18.3.0/25', dev: 'eth2', src: '198.18.3.5', scope: 'link'},
      {table: 7002, dst: 'default', dev: 'eth2', via: '198.18.1.254'},
    ])
  })

  it('is deterministic', () => {
    expect(JSON.stringify(renderIptables(sampleModel()))).to.equal(JSON.stringify(renderIptables(sampleModel())))
  })

  describe('refuses a model it cannot render safely', () => {
    const cases: [string, (m: NatModel) => void, string][] = [
      ['two Mappings on one endpoint', (m) => m.mappings[1]!.endpoints.push({...m.mappings[0]!.endpoints[0]!}), 'mapping default/web: endpoint 198.18.0.10 udp/53 is also claimed by default/dns'],
      ['an interface name with a space', (m) => (m.interfaces[0]!.name = 'eth1 -j ACCEPT'), 'interface name "eth1 -j ACCEPT" cannot be used in rules'],
      ['egress through an unknown interface', (m) => (m.egress[0]!.interface = 'eth9'), 'egress uses interface "eth9", which is not an external interface'],
      ['a name with a quote', (m) => (m.mappings[0]!.name = 'dns"x'), 'mapping "default/dns\\"x": name cannot be used in a rule comment'],
      ['port 0', (m) => (m.mappings[0]!.endpoints[0]!.port = 0), 'mapping default/dns: port 0 -> 53 is outside 1..65535'],
      ['a port that cannot be turned into text', (m) => (m.mappings[0]!.endpoints[0]!.port = {toString: {}} as never), 'mapping default/dns: port {"toString":{}} -> 53 is outside 1..65535'],
      ['an address that is not canonical', (m) => (m.mappings[0]!.endpoints[0]!.targetIP = ip('198.19.100.11').replace('11', '011') as never), 'mapping default/dns: "198.19.100.011" is not an IPv4 address in canonical form'],
    ]
    for (const [name, spoil, message] of cases) {
      it(name, () => {
        const model = sampleModel()
        spoil(model)
        expect(() => renderIptables(model)).to.throw(message)
      })
    }
  })

  it('cuts a Mapping name that would overflow the 255-character comment', () => {
    const model = sampleModel()
    model.mappings[0]!.name = 'd'.repeat(253)
    const rule = chain(model, 'nat', A0).find((r) => r.includes('udp/53'))!
    const comment = /--comment "([^"]*)"/.exec(rule)![1]!
    expect(comment.length).to.equal(255)
    expect(comment).to.match(/^default\/d+ udp\/53$/)
  })
})

describe('owned names', () => {
  it('fit the kernel limits, temporary sets included', () => {
    const address = ip('255.255.255.255')
    expect(addressChainName(address).length).to.be.at.most(MAX_CHAIN_NAME)
    for (const name of ['SNM-PREROUTING', 'SNM-POSTROUTING', 'SNM-SNAT', 'SNM-INPUT', 'SNM-FORWARD']) expect(name.length).to.be.at.most(MAX_CHAIN_NAME)
    for (const set of ['SNM-ALLOW', 'SNM-ENDPOINTS', egressSetName(address), egressInterfaceSetName(255)]) expect(tempSetName(set).length).to.be.at.most(MAX_SET_NAME)
  })

  it('are all recognised as owned, and nothing else is', () => {
    const state = renderIptables(sampleModel())
    const names = [...Object.values(state.tables).flatMap((t) => t.chains.map((c) => c.name)), ...state.sets.map((s) => s.name)]
    expect(names.filter((n) => !isOwnedName(n))).to.deep.equal([])
    expect(['PREROUTING', 'KUBE-SERVICES', 'snm-a', 'SNMX'].filter(isOwnedName)).to.deep.equal([])
  })
})

describe('set options', () => {
  it('grow maxelem in powers of two past 65536, and start hashsize where the kernel would grow it', () => {
    expect([0, 4096, 4097, 65536, 65537, 200000].map(setOptions)).to.deep.equal([
      'family inet hashsize 1024 maxelem 65536',
      'family inet hashsize 1024 maxelem 65536',
      'family inet hashsize 2048 maxelem 65536',
      'family inet hashsize 16384 maxelem 65536',
      'family inet hashsize 32768 maxelem 131072',
      'family inet hashsize 65536 maxelem 262144',
    ])
  })
})

describe('renderRestoreScripts', () => {
  const state = renderIptables(sampleModel())

  it('rebuilds each set under a temporary name and swaps it in', () => {
    const lines = renderRestoreScripts(state).ipset.split('\n')
    const endpoints = lines.filter((l) => / SNM-ENDPOINTS(-T)?( |$)/.test(l))
    expect(endpoints).to.deep.equal([
      'destroy SNM-ENDPOINTS-T',
      'create SNM-ENDPOINTS hash:ip,port family inet hashsize 1024 maxelem 65536',
      'create SNM-ENDPOINTS-T hash:ip,port family inet hashsize 1024 maxelem 65536',
      'add SNM-ENDPOINTS-T 198.18.0.10,tcp:443',
      'add SNM-ENDPOINTS-T 198.18.0.10,tcp:80',
      'add SNM-ENDPOINTS-T 198.18.0.10,udp:53',
      'add SNM-ENDPOINTS-T 198.18.1.10,tcp:80',
      'add SNM-ENDPOINTS-T 198.18.2.10,tcp:80',
      'swap SNM-ENDPOINTS-T SNM-ENDPOINTS',
      'destroy SNM-ENDPOINTS-T',
    ])
    expect(lines.at(-1)).to.equal('')
  })

  it('declares owned chains, writes their rules and inserts jumps first', () => {
    const filter = renderRestoreScripts(state).iptables.split('\n').slice(-9, -1)
    expect(filter).to.deep.equal([
      '*filter',
      ':SNM-INPUT - [0:0]',
      ':SNM-FORWARD - [0:0]',
      '-A SNM-INPUT -m set --match-set SNM-ENDPOINTS dst,dst -j DROP',
      '-A SNM-FORWARD -m connmark ! --mark 0x0/0xff00000 -j ACCEPT',
      '-I INPUT 1 -m comment --comment smartnat -j SNM-INPUT',
      '-I FORWARD 1 -m comment --comment smartnat -j SNM-FORWARD',
      'COMMIT',
    ])
    const tables = renderRestoreScripts(state).iptables.split('\n').filter((l) => l.startsWith('*'))
    expect(tables).to.deep.equal(['*mangle', '*nat', '*filter'])
  })
})

describe('LineBuffer', () => {
  it('joins words by spaces and ends every line, the last one too', () => {
    const out = new LineBuffer()
    out.write('add', 'SNM-ALLOW', '198.18.0.10,tcp:80,198.18.9.0/24')
    out.writeLines(['-A SNM-PREROUTING -j RETURN', 'COMMIT'])
    expect(out.toString()).to.equal('add SNM-ALLOW 198.18.0.10,tcp:80,198.18.9.0/24\n-A SNM-PREROUTING -j RETURN\nCOMMIT\n')
    expect(new LineBuffer().toString()).to.equal('')
  })

  for (const [what, word] of [
    ['a newline', 'web\n-A INPUT -j ACCEPT'],
    ['a carriage return', 'web\r'],
    ['a NUL', 'web\0'],
    ['a newline in a complete line', '-A X -j ACCEPT\nCOMMIT'],
  ] as const) {
    it(`refuses a line holding ${what}, naming it`, () => {
      const build = () => {
        const out = new LineBuffer()
        out.write('create', 'SNM-ALLOW', 'hash:ip,port,net')
        if (what.includes('complete')) out.writeLines([word])
        else out.write('add', word)
        out.write('COMMIT')
        return out.toString()
      }
      const shown = JSON.stringify(what.includes('complete') ? word : `add ${word}`)
      expect(build).to.throw(`refusing to write a payload line with a line break: ${shown}`)
    })
  }
})

describe('LineBuffer.writeEach', () => {
  it('writes one line per item after the words, and nothing for no items', () => {
    const out = new LineBuffer()
    out.write('create', 'S', 'hash:ip')
    out.writeEach(['add', 'S'], [])
    out.writeEach(['add', 'S'], ['198.18.0.1', '198.18.0.2'])
    out.write('swap', 'S-T', 'S')
    expect(out.toString()).to.equal('create S hash:ip\nadd S 198.18.0.1\nadd S 198.18.0.2\nswap S-T S\n')
  })

  it('refuses an item holding a line break, naming its line', () => {
    const out = new LineBuffer()
    expect(() => out.writeEach(['add', 'S'], ['198.18.0.1', '198.18.0.2\ndestroy S'])).to.throw(
      'refusing to write a payload line with a line break: "add S 198.18.0.2\\ndestroy S"',
    )
    expect(out.toString()).to.equal('')
  })
})
