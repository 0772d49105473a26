/**
 * `smartnat flush` on a host that has a ruleset of its own, for each backend: smartnat's rules
 * coexist with it (FORWARD policy DROP included), and flush takes away smartnat's part only, byte
 * for byte.
 */
import {expect} from 'chai'
import type {StatusReport} from '../../src/lib/status/report.js'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS} from '../support/backends.js'
import {commandArgs, kernelDump, labArgs, syncArgs, type FlushJson, type SyncJson} from '../support/e2e.js'
import {LAB_PLAN, type EchoResult, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab} from '../support/mappings.js'
import {smartnat, smartnatJson} from '../support/smartnat-cli.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const EXT = LAB_PLAN.host.eth1.addresses[0]
const EXT_2 = LAB_PLAN.host.eth2.addresses[0]
const CLIENT = LAB_PLAN.client1.addresses[0]

const pod = (r: EchoResult) => (r.ok ? r.fields.pod : r.error)

/** Chains and rules in all three tables, a DROP policy, a set, an ip rule and a routing table, none of them smartnat's. */
const FOREIGN_RULESET = `
  ipset create lab-block hash:net
  ipset add lab-block 198.18.66.0/24
  iptables -P FORWARD DROP
  iptables -N LAB-FWD
  iptables -A FORWARD -j LAB-FWD
  iptables -A LAB-FWD -s 198.18.9.0/24 -m comment --comment "office net" -j ACCEPT
  iptables -A INPUT -m set --match-set lab-block src -j DROP
  iptables -t nat -A PREROUTING -d ${LAB_PLAN.host.eth1.addresses[2]}/32 -p tcp --dport 22 -j DNAT --to-destination 198.18.0.98:22
  iptables -t nat -A POSTROUTING -s 198.18.9.0/24 -o eth1 -j MASQUERADE
  iptables -t mangle -N LAB-MARK
  iptables -t mangle -A PREROUTING -j LAB-MARK
  iptables -t mangle -A LAB-MARK -s 198.18.9.0/24 -j MARK --set-mark 0x7
  ip rule add priority 500 from 198.18.9.0/24 table 100
  ip route add default via ${LAB_PLAN.host.eth1.gateway} dev eth1 table 100
`

for (const backend of BACKENDS) describe(`smartnat flush next to a foreign ruleset (root, ${backend.name})`, function () {
  this.timeout(60_000)
  let lab: Lab
  let dir: ManifestDir
  let foreignOnly: string

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    await lab.exec('host', 'sh', ['-ec', FOREIGN_RULESET])
    foreignOnly = await kernelDump(lab)
    await dir.write({
      services: [serviceFromLab('web', lab.services(), VIP)],
      mappings: [{name: 'web', addresses: [EXT, EXT_2], serviceName: 'web', ports: [{port: 8080, servicePort: 80}, {port: 5300, protocol: 'udp', servicePort: 53}]}],
    })
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  const forwardProblems = async () => {
    const run = await smartnat(commandArgs('status', backend.name, lab, dir, '--snat', '--json'))
    return (JSON.parse(run.stdout) as StatusReport).host.problems.filter((p) => p.includes('FORWARD'))
  }
  const reachable = async () => {
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, EXT, 8080)))
    expect(PODS).to.include(pod(await lab.udpRequest('client1', CLIENT, EXT, 5300)))
    expect(PODS).to.include(pod(await lab.tcpRequest('client2', undefined, EXT_2, 8080)))
  }

  it('coexists with FORWARD’s DROP policy: each backend accepts smartnat’s connections in FORWARD, and the next sync puts that back', async () => {
    const synced = await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir, '--snat'))
    expect(synced).to.include({configured: 1, changed: true})
    await reachable()
    expect(await forwardProblems()).to.deep.equal([])
    // The DROP policy is real: without smartnat's accept nothing gets through; the next sync puts it back.
    await backend.removeForwardAccept(lab)
    expect(pod(await lab.tcpRequest('client1', CLIENT, EXT, 8080, {timeoutMs: 800}))).to.equal('timeout')
    expect((await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir, '--snat'))).written.rules).to.equal(1)
    await reachable()
  })

  it('without a terminal and without --yes, flush refuses and removes nothing', async () => {
    const before = await kernelDump(lab)
    const refused = await smartnat(['flush', ...labArgs(lab, dir)], {timeoutMs: 20_000})
    expect(refused.code).to.equal(2)
    expect(refused.stderr).to.include('stdin is not a terminal; pass --yes to flush without asking')
    expect(await kernelDump(lab)).to.equal(before)
  })

  it('--dry-run lists what flush would remove and removes nothing', async () => {
    const before = await kernelDump(lab)
    const preview = await smartnatJson<FlushJson>(['flush', '--dry-run', ...labArgs(lab, dir)])
    expect(preview).to.include({dryRun: true, changed: true})
    expect(preview.removed.sets).to.include.members(backend.allowAndEndpointSets)
    expect(preview.removed.ipRules).to.deep.equal(['priority 7001 fwmark 0x100000/0xff00000 table 7001', 'priority 7002 fwmark 0x200000/0xff00000 table 7002'])
    expect(await kernelDump(lab)).to.equal(before)
  })

  it('removes exactly what smartnat installed, leaving the foreign ruleset byte for byte; a second flush finds nothing', async () => {
    const flushed = await smartnatJson<FlushJson>(['flush', '--yes', ...labArgs(lab, dir)])
    expect(flushed).to.include({dryRun: false, changed: true, declined: false})
    expect(flushed.removed.jumps).to.have.length(backend.flushedJumps)
    expect(flushed.removed.chains).to.not.deep.equal([])
    expect(flushed.removed.chains.every((c) => backend.owns('chain', c)), flushed.removed.chains.join('\n')).to.equal(true)
    expect(flushed.removed.sets.every((s) => backend.owns('set', s)), flushed.removed.sets.join('\n')).to.equal(true)
    expect(flushed.removed.sets.some((s) => backend.isEgressSet(s))).to.equal(true)
    expect(flushed.removed.routes).to.have.length(4)
    expect(await kernelDump(lab)).to.equal(foreignOnly)

    const again = await smartnat(['flush', '--yes', ...labArgs(lab, dir)])
    expect(again.code, again.stderr).to.equal(0)
    expect(again.stdout.trim()).to.equal('nothing of smartnat’s is installed: nothing to remove')
    const againJson = await smartnatJson<FlushJson>(['flush', '--yes', ...labArgs(lab, dir)])
    expect(againJson).to.deep.equal({dryRun: false, changed: false, declined: false, removed: {jumps: [], chains: [], sets: [], ipRules: [], routes: []}})
    expect(await kernelDump(lab)).to.equal(foreignOnly)
    expect(pod(await lab.tcpRequest('client1', CLIENT, EXT, 8080, {timeoutMs: 800}))).to.equal('refused')
  })
})
