/**
 * Taking a host over from the Go SmartNat controller, for each backend: its layout (rebuilt with the
 * commands its helpers issue, see test/support/go-controller.ts) serves two Mappings with traffic
 * flowing; `sync --migrate` with the same Mappings replaces it without one connection attempt failing,
 * leaves nothing of it and nothing else touched, also after a sync without --migrate took over half of
 * it. `flush --legacy` removes it alone, and finds nothing on a host where only smartnat's rules are.
 */
import {readFile, writeFile} from 'node:fs/promises'
import {expect} from 'chai'
import {createBackendLab, removeBackendLab} from '../support/backend-lab.js'
import {BACKENDS} from '../support/backends.js'
import {kernelDump, labArgs, syncArgs, type SyncJson} from '../support/e2e.js'
import {goShortName, loadGoLayout, type GoInterface, type GoMapping} from '../support/go-controller.js'
import {LAB_PLAN, type EchoResult, type Lab} from '../support/lab.js'
import {ManifestDir, serviceFromLab} from '../support/mappings.js'
import {smartnat, smartnatJson} from '../support/smartnat-cli.js'
import {startTrafficMonitor, type MonitorTarget} from '../support/traffic-monitor.js'

const VIP = '198.19.100.10'
const PODS = ['198.19.200.11', '198.19.200.12']
const [WEB_ADDRESS, DNS_ADDRESS] = LAB_PLAN.host.eth1.addresses
const CLIENT = LAB_PLAN.client1.addresses[0]
const OTHER_CLIENT = LAB_PLAN.client1.addresses[1]

const GO_INTERFACES: GoInterface[] = [
  {name: 'eth1', addresses: [...LAB_PLAN.host.eth1.addresses], subnet: '198.18.0.0/24', gateway: LAB_PLAN.host.eth1.gateway},
  {name: 'eth2', addresses: [...LAB_PLAN.host.eth2.addresses], subnet: '198.18.2.0/24', gateway: LAB_PLAN.host.eth2.gateway},
]

const GO_MAPPINGS: GoMapping[] = [
  {namespace: 'default', name: 'web', address: WEB_ADDRESS!, allowedSources: [`${CLIENT}/32`], ports: [{protocol: 'tcp', port: 8080, servicePort: 80}], clusterIP: VIP, pods: PODS},
  {
    namespace: 'default',
    name: 'dns',
    address: DNS_ADDRESS!,
    allowedSources: ['198.18.1.0/24'],
    ports: [
      {protocol: 'udp', port: 5300, servicePort: 53},
      {protocol: 'tcp', port: 8081, servicePort: 80},
    ],
    clusterIP: VIP,
    pods: PODS,
  },
]

/** Its chains: two named as smartnat's are, three only it uses, one per Mapping. */
const GO_CHAINS = [
  'mangle: SNM-PREROUTING',
  'nat: SNM-PREROUTING',
  'nat: SNM-POSTROUTING-SNAT',
  'nat: SNM-POSTROUTING-MASQ',
  ...GO_MAPPINGS.map((m) => `nat: MAP-${goShortName(m.namespace, m.name)}`),
]

const TARGETS: MonitorTarget[] = [
  {protocol: 'tcp', ip: WEB_ADDRESS!, port: 8080},
  {protocol: 'udp', ip: DNS_ADDRESS!, port: 5300},
  {protocol: 'tcp', ip: DNS_ADDRESS!, port: 8081},
]

/**
 * Someone else's rules, some with names close to the Go controller's: a set of its name shape but
 * another type, a MAP- chain whose name is no hash, an ip rule to a table named in rt_tables. It has
 * rules in every built-in chain the Go controller used, so iptables-nft's base chains exist before it.
 */
const FOREIGN_RULESET = `
  ipset create ABCDEFGHIJKLMNOPQRSTUVWX hash:net comment counters
  ipset create DNAT-office hash:net,port
  iptables -N LAB-FWD
  iptables -A FORWARD -j LAB-FWD
  iptables -A LAB-FWD -s 198.18.9.0/24 -m comment --comment "\\"office net\\"" -j ACCEPT
  iptables -A INPUT -m set --match-set ABCDEFGHIJKLMNOPQRSTUVWX src -j DROP
  iptables -t nat -N MAP-LOCAL
  iptables -t nat -A PREROUTING -d ${LAB_PLAN.host.eth1.addresses[2]}/32 -p tcp --dport 22 -j MAP-LOCAL
  iptables -t nat -A MAP-LOCAL -p tcp -j DNAT --to-destination 198.18.0.98:22
  iptables -t nat -A POSTROUTING -s 198.18.9.0/24 -o eth1 -j MASQUERADE
  iptables -t mangle -N LAB-MARK
  iptables -t mangle -A PREROUTING -j LAB-MARK
  iptables -t mangle -A LAB-MARK -s 198.18.9.0/24 -j MARK --set-mark 0x801
  ip rule add priority 500 from 198.18.9.0/24 table 100
  ip rule add priority 501 fwmark 0x801 table 100
  ip route add default via ${LAB_PLAN.host.eth1.gateway} dev eth1 table 100
`
const FOREIGN_RT_TABLES = '#\n# reserved values\n#\n255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n#\n100 office\n'

const pod = (r: EchoResult) => (r.ok ? r.fields.pod : r.error)

for (const backend of BACKENDS) describe(`taking over from the Go controller (root, ${backend.name})`, function () {
  this.timeout(120_000)
  let lab: Lab
  let dir: ManifestDir
  let rtTables: string
  let foreignOnly: string

  const legacyArgs = () => [...labArgs(lab, dir), '--rt-tables', rtTables]
  const migrateArgs = () => syncArgs(backend.name, lab, dir, '--snat', '--migrate', '--rt-tables', rtTables)
  const loadGo = () => loadGoLayout(lab, rtTables, GO_INTERFACES, GO_MAPPINGS)
  const goServes = async () => {
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, WEB_ADDRESS!, 8080)))
    expect(PODS).to.include(pod(await lab.udpRequest('client1', CLIENT, DNS_ADDRESS!, 5300)))
  }

  before(async function () {
    ;({lab, dir} = await createBackendLab(this, backend))
    rtTables = dir.file('rt_tables')
    await writeFile(rtTables, FOREIGN_RT_TABLES)
    await lab.exec('host', 'sh', ['-ec', FOREIGN_RULESET])
    foreignOnly = await kernelDump(lab)
    await dir.write({
      services: [serviceFromLab('web', lab.services(), VIP)],
      mappings: GO_MAPPINGS.map((m) => ({name: m.name, addresses: [m.address], allowedSources: m.allowedSources, serviceName: 'web', ports: m.ports})),
    })
  })

  after(async () => {
    await removeBackendLab(lab, dir)
  })

  it('sync --migrate replaces the Go layout with traffic flowing: no attempt fails, nothing of it remains, the foreign ruleset stays', async () => {
    await loadGo()
    await goServes()
    const monitor = await startTrafficMonitor(lab, 'client1', TARGETS, {source: CLIENT, maxSeconds: 60})
    let report
    let synced: SyncJson & {legacyRemoved?: Record<string, string[]>}
    try {
      // Probes run before, during and after the migration.
      await new Promise((resolve) => setTimeout(resolve, 500))
      synced = await smartnatJson(migrateArgs())
      await new Promise((resolve) => setTimeout(resolve, 500))
    } finally {
      report = await monitor.stop()
    }
    expect(report.failures.length, JSON.stringify(report.failures.slice(0, 5))).to.equal(0)
    for (const target of Object.values(report.targets)) expect(target.attempts).to.be.greaterThan(10)

    expect(synced).to.include({configured: 2, changed: true})
    const removed = synced.legacyRemoved!
    expect(removed.chains).to.have.members(GO_CHAINS)
    expect(removed.sets).to.have.length(4)
    expect(removed.ipRules).to.have.length(6)
    expect(removed.routes).to.have.length(4)
    expect(removed.rtTables).to.have.length(2)

    // smartnat serves both Mappings, allow-lists included, and its own state is complete.
    await goServes()
    expect(PODS).to.include(pod(await lab.tcpRequest('client1', CLIENT, DNS_ADDRESS!, 8081)))
    expect(pod(await lab.tcpRequest('client1', OTHER_CLIENT, WEB_ADDRESS!, 8080, {timeoutMs: 800}))).to.equal('timeout')
    expect(await smartnatJson<SyncJson>(syncArgs(backend.name, lab, dir, '--snat'))).to.include({changed: false})

    // Nothing of the Go controller's is left: taking smartnat's away leaves the foreign ruleset alone, byte for byte.
    await smartnatJson(['flush', '--yes', ...labArgs(lab, dir)])
    expect(await kernelDump(lab)).to.equal(foreignOnly)
    expect(await readFile(rtTables, 'utf8')).to.equal(FOREIGN_RT_TABLES)
  })

  it('smartnat’s flush leaves the Go layout alone; flush --legacy lists it on --dry-run, then removes it alone', async () => {
    await loadGo()
    await goServes()
    const loaded = await kernelDump(lab)
    // smartnat's own flush takes none of it for smartnat's, the SNM- names included.
    const own = await smartnat(['flush', '--yes', ...labArgs(lab, dir)])
    expect(own.stdout.trim(), own.stderr).to.equal('nothing of smartnat’s is installed: nothing to remove')
    expect(await kernelDump(lab)).to.equal(loaded)
    const preview = await smartnatJson<{dryRun: boolean; changed: boolean; removed: Record<string, string[]>}>(['flush', '--legacy', '--dry-run', ...legacyArgs()])
    expect(preview).to.include({dryRun: true, changed: true})
    expect(preview.removed.jumps).to.have.length(4)
    expect(preview.removed.chains).to.have.members(GO_CHAINS)
    expect(await kernelDump(lab)).to.equal(loaded)

    const flushed = await smartnatJson<{changed: boolean; removed: Record<string, string[]>}>(['flush', '--legacy', '--yes', ...legacyArgs()])
    expect(flushed.removed).to.deep.equal(preview.removed)
    expect(await kernelDump(lab)).to.equal(foreignOnly)
    expect(await readFile(rtTables, 'utf8')).to.equal(FOREIGN_RT_TABLES)
    const again = await smartnat(['flush', '--legacy', '--yes', ...legacyArgs()])
    expect(again.stdout.trim()).to.equal('nothing of the Go controller’s is installed: nothing to remove')
  })

  it('flush --legacy on a host with only smartnat’s rules changes nothing', async () => {
    await smartnatJson(syncArgs(backend.name, lab, dir, '--snat'))
    const synced = await kernelDump(lab)
    const flushed = await smartnatJson<{changed: boolean}>(['flush', '--legacy', '--yes', ...legacyArgs()])
    expect(flushed.changed).to.equal(false)
    expect(await kernelDump(lab)).to.equal(synced)
    expect(await readFile(rtTables, 'utf8')).to.equal(FOREIGN_RT_TABLES)
    await smartnatJson(['flush', '--yes', ...labArgs(lab, dir)])
    expect(await kernelDump(lab)).to.equal(foreignOnly)
  })

  it('after a sync without --migrate on the Go layout (the Go jumps now enter smartnat’s chains), sync --migrate removes the rest', async () => {
    await loadGo()
    await smartnatJson(syncArgs(backend.name, lab, dir, '--snat'))
    await goServes()
    const synced = await smartnatJson<SyncJson & {legacyRemoved: Record<string, string[]>}>(migrateArgs())
    expect(synced.legacyRemoved.sets).to.have.length(4)
    expect(synced.legacyRemoved.rtTables).to.have.length(2)
    await goServes()
    await smartnatJson(['flush', '--yes', ...labArgs(lab, dir)])
    expect(await kernelDump(lab)).to.equal(foreignOnly)
    expect(await readFile(rtTables, 'utf8')).to.equal(FOREIGN_RT_TABLES)
  })
})
