import {expect} from 'chai'
import {ruleWords} from '../../src/lib/backend/iptables-syntax.js'
import {parseIpsetSave, parseIptablesSave, ruleTarget} from '../../src/lib/backend/iptables/parse.js'
import {parseIpRoutes, parseIpRules} from '../../src/lib/routing/parse.js'
import {IPSET_SAVE, IPTABLES_SAVE, IP_ROUTE_JSON, IP_RULE_JSON} from './fixtures/kernel-capture.js'
import {workRatio} from '../support/work-counter.js'

describe('iptables backend read-back parsers', () => {
  describe('parseIptablesSave', () => {
    const parsed = parseIptablesSave(IPTABLES_SAVE)

    it('keeps owned nat chains with their rules, in iptables-save order', () => {
      expect(parsed.nat.chains.map((c) => c.name)).to.deep.equal(['SNM-A-1a2b3c4d', 'SNM-POSTROUTING', 'SNM-PREROUTING'])
      expect(parsed.nat.chains[0]!.rules).to.deep.equal([
        '-A SNM-A-1a2b3c4d -p tcp -m tcp --dport 80 -m comment --comment "default/web tcp/80" -j DNAT --to-destination 198.19.1.10:8080',
        '-A SNM-A-1a2b3c4d -p udp -m udp --dport 53 -m comment --comment "kube-system/dns udp/53" -j DNAT --to-destination 198.19.1.11:53',
      ])
      expect(parsed.nat.chains[2]!.rules).to.have.length(4)
    })

    it('keeps only the jumps from built-in chains into owned chains', () => {
      expect(parsed.nat.jumps).to.deep.equal([
        '-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING',
        '-A POSTROUTING -m comment --comment smartnat -j SNM-POSTROUTING',
      ])
      expect(parsed.filter.jumps).to.deep.equal([
        '-A INPUT -m comment --comment smartnat -j SNM-INPUT',
        '-A FORWARD -m comment --comment smartnat -j SNM-FORWARD',
      ])
      expect(parsed.mangle.jumps).to.deep.equal(['-A PREROUTING -m comment --comment smartnat -j SNM-PREROUTING'])
    })

    it('tallies what is not smartnat\'s without keeping it as owned', () => {
      expect(parsed.filter.foreignChains).to.deep.equal([':INPUT ACCEPT', ':FORWARD DROP', ':OUTPUT ACCEPT', ':FOREIGN-FWD -'])
      expect(parsed.filter.foreignRules).to.equal(2)
      expect(parsed.nat.foreignRules).to.equal(1)
      expect(parsed.filter.chains.map((c) => c.name)).to.deep.equal(['SNM-FORWARD', 'SNM-INPUT'])
    })

    it('does not take a foreign rule for a jump because its comment mentions an owned chain', () => {
      const text = '*nat\n:PREROUTING ACCEPT [0:0]\n-A PREROUTING -m comment --comment "see -j SNM-PREROUTING" -j ACCEPT\nCOMMIT\n'
      const nat = parseIptablesSave(text).nat
      expect(nat.jumps).to.deep.equal([])
      expect(nat.foreignRules).to.equal(1)
    })

    it('ignores tables other than mangle, nat and filter', () => {
      const text = '*raw\n:SNM-X - [0:0]\n-A SNM-X -j ACCEPT\nCOMMIT\n*nat\n:SNM-Y - [0:0]\nCOMMIT\n'
      const parsed = parseIptablesSave(text)
      expect(parsed.nat.chains).to.deep.equal([{name: 'SNM-Y', rules: []}])
      expect(parsed.filter.chains).to.deep.equal([])
    })

    it('parses 100,000 rules with work linear in their number', () => {
      const saveOf = (pairs: number) => {
        const lines = ['*nat', ':PREROUTING ACCEPT [0:0]', ':SNM-A-big - [0:0]', ':FOREIGN - [0:0]']
        for (let i = 0; i < pairs; i++) {
          lines.push(`-A SNM-A-big -p tcp -m tcp --dport ${i} -m comment --comment "ns/m${i} tcp/${i}" -j DNAT --to-destination 198.19.0.1:${i}`)
          lines.push(`-A FOREIGN -s 198.18.${i % 256}.0/24 -j ACCEPT`)
        }
        lines.push('COMMIT')
        return lines.join('\n')
      }
      const [small, large] = [saveOf(25_000), saveOf(50_000)]
      const ratio = workRatio(() => parseIptablesSave(small), () => parseIptablesSave(large))
      expect(ratio, `50,000 / 25,000 rule pairs took ${ratio.toFixed(2)}x the work`).to.be.below(2.5)
      const parsed = parseIptablesSave(large)
      expect(parsed.nat.chains[0]!.rules).to.have.length(50_000)
      expect(parsed.nat.foreignRules).to.equal(50_000)
    })
  })

  describe('rule words', () => {
    const cases: [string, string[], string | undefined][] = [
      ['-A X -m comment --comment "a \\"b\\" c" -j SNM-Y', ['-A', 'X', '-m', 'comment', '--comment', 'a "b" c', '-j', 'SNM-Y'], 'SNM-Y'],
      ['-A X -g SNM-Z', ['-A', 'X', '-g', 'SNM-Z'], 'SNM-Z'],
      ['-A X -s 198.18.0.0/24', ['-A', 'X', '-s', '198.18.0.0/24'], undefined],
      ['-A X -j DNAT --to-destination 198.19.0.1:80', ['-A', 'X', '-j', 'DNAT', '--to-destination', '198.19.0.1:80'], 'DNAT'],
    ]
    for (const [line, words, target] of cases) {
      it(`${line} -> target ${target}`, () => {
        expect(ruleWords(line)).to.deep.equal(words)
        expect(ruleTarget(ruleWords(line))).to.equal(target)
      })
    }
  })

  describe('parseIpsetSave', () => {
    const {sets, foreignSets} = parseIpsetSave(IPSET_SAVE)

    it('keeps owned sets sorted by name with sorted entries and without the random initval', () => {
      expect(sets).to.deep.equal([
        {
          name: 'SNM-ALLOW',
          type: 'hash:ip,port,net',
          options: 'family inet hashsize 1024 maxelem 65536 bucketsize 12',
          entries: [
            '198.18.0.2,tcp:80,198.19.0.0/16',
            '198.18.0.2,tcp:80,198.19.7.7',
            '198.18.0.2,udp:53,0.0.0.0/1',
            '198.18.0.2,udp:53,128.0.0.0/1',
          ],
        },
        {
          name: 'SNM-ENDPOINTS',
          type: 'hash:ip,port',
          options: 'family inet hashsize 1024 maxelem 65536 bucketsize 12',
          entries: ['198.18.0.2,tcp:80', '198.18.0.2,udp:53'],
        },
      ])
    })

    it('names foreign sets and keeps none of their entries', () => {
      expect(foreignSets).to.deep.equal(['blocklist'])
    })

    it('parses 100,000 entries with work linear in their number, but for sorting them', () => {
      const saveOf = (count: number) => {
        const lines = ['create SNM-ALLOW hash:ip,port,net family inet hashsize 1024 maxelem 262144']
        // In an order the parser's sort must undo, alike at both sizes (7919 is prime: every i once).
        for (let k = 0; k < count; k++) {
          const i = (k * 7919) % count
          lines.push(`add SNM-ALLOW ${i >> 16 ? '198.19' : '198.18'}.${i >> 8 & 255}.${i & 255},tcp:${i % 65535},0.0.0.0/1`)
        }
        return lines.join('\n')
      }
      const [small, large] = [saveOf(50_000), saveOf(100_000)]
      const ratio = workRatio(() => parseIpsetSave(small), () => parseIpsetSave(large))
      expect(ratio, `100,000 / 50,000 entries took ${ratio.toFixed(2)}x the work`).to.be.below(2.5)
      expect(parseIpsetSave(large).sets[0]!.entries).to.have.length(100_000)
    })
  })

  describe('ip -j parsers', () => {
    it('keeps only rules with priority and table both in 7001..7255', () => {
      expect(parseIpRules(IP_RULE_JSON)).to.deep.equal([{priority: 7001, fwmark: '0x100000/0xff00000', table: 7001}])
      const edge = JSON.stringify([
        {priority: 7000, src: 'all', fwmark: '0x1', table: '7000'},
        {priority: 7256, src: 'all', fwmark: '0x1', table: '7256'},
        {priority: 7255, src: 'all', fwmark: '0xff00000', table: '7255'},
        {priority: 7002, src: 'all', table: 'main'},
      ])
      expect(parseIpRules(edge)).to.deep.equal([{priority: 7255, fwmark: '0xff00000', table: 7255}])
    })

    it('keeps only routes in smartnat\'s tables', () => {
      expect(parseIpRoutes(IP_ROUTE_JSON)).to.deep.equal([
        {table: 7001, dst: '198.18.0.0/24', dev: 'ext0', src: '198.18.0.2', scope: 'link'},
        {table: 7001, dst: 'default', dev: 'ext0', via: '198.18.0.1'},
      ])
    })

    it('spells a host route with its /32', () => {
      const json = JSON.stringify([{dst: '198.18.0.9', dev: 'ext0', table: '7003', scope: 'link', flags: []}])
      expect(parseIpRoutes(json)).to.deep.equal([{table: 7003, dst: '198.18.0.9/32', dev: 'ext0', scope: 'link'}])
    })

    it('rejects output that is not a JSON array with a message naming the command', () => {
      expect(() => parseIpRules('Error: garbage')).to.throw('ip -j rule show: output is not JSON')
      expect(() => parseIpRoutes('{}')).to.throw('ip -j route show table all: output is not a JSON array')
    })
  })
})
