import {expect} from 'chai'
import {mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {
  deleteConntrackFlows,
  deleteFlowsFromEndpoints,
  deleteStaleNatFlows,
  parseConntrackList,
} from '../../src/lib/host/conntrack.js'
import {
  DEFAULT_INTERFACES_PATTERN,
  compileInterfacesPattern,
  parseIpAddrJson,
  readHostInterfaces,
} from '../../src/lib/host/interfaces.js'
import {LockHeldError, acquireLock, inspectLock, withLock, type LockHolder} from '../../src/lib/host/lock.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'
import {checkIpForwarding, relaxReversePathFilter} from '../../src/lib/host/sysctl.js'
import {assertToolsPresent, checkTools} from '../../src/lib/host/tools.js'
import {startLockProcess, type LockProcess} from '../support/locks.js'

const ip = (text: string) => text as Ipv4
const line = (call: RecordedCall) => [call.command, ...call.args].join(' ')

// Trimmed `ip -j -4 addr show` of a host with two external interfaces, the second with secondaries.
const IP_ADDR_JSON = JSON.stringify([
  {ifindex: 1, ifname: 'lo', addr_info: [{family: 'inet', local: '127.0.0.1', prefixlen: 8}]},
  {ifindex: 2, ifname: 'eth0', addr_info: [{family: 'inet', local: '192.0.2.2', prefixlen: 24}]},
  {},
  {
    ifindex: 3,
    ifname: 'eth2',
    addr_info: [
      {family: 'inet', local: '198.18.2.10', prefixlen: 24},
      {family: 'inet', local: '198.18.2.9', prefixlen: 24, secondary: true},
    ],
  },
  {
    ifindex: 4,
    ifname: 'eth1',
    addr_info: [
      {family: 'inet', local: '198.18.0.12', prefixlen: 24},
      {family: 'inet6', local: 'fe80::1', prefixlen: 64},
      {family: 'inet', local: '198.18.0.10', prefixlen: 24, secondary: true},
    ],
  },
  {ifindex: 5, ifname: 'eth10', addr_info: []},
  {ifindex: 6, ifname: 'cluster0', addr_info: [{family: 'inet', local: '198.18.4.1', prefixlen: 24}]},
])

describe('host', () => {
  describe('interfaces', () => {
    const defaultPattern = compileInterfacesPattern(DEFAULT_INTERFACES_PATTERN)

    it('reads matching interfaces with IPv4 addresses in kernel order, primary first', async () => {
      const runner = new RecordingRunner(() => ({stdout: IP_ADDR_JSON}))
      const info = await readHostInterfaces(runner, defaultPattern)
      expect(runner.calls.map(line)).to.deep.equal(['ip -j -4 addr show'])
      expect(info).to.deep.equal({
        interfaces: [
          {name: 'eth2', addresses: [{address: '198.18.2.10', prefixLength: 24}, {address: '198.18.2.9', prefixLength: 24}]},
          {name: 'eth1', addresses: [{address: '198.18.0.12', prefixLength: 24}, {address: '198.18.0.10', prefixLength: 24}]},
        ],
      })
    })

    const patterns: [string, string, string[]][] = [
      ['default pattern skips eth0', DEFAULT_INTERFACES_PATTERN, ['eth2', 'eth1']],
      ['any name still skips lo', '.*', ['eth0', 'eth2', 'eth1', 'cluster0']],
      ['custom pattern', '^cluster', ['cluster0']],
    ]
    for (const [desc, pattern, want] of patterns) {
      it(`${desc}: ${pattern}`, () => {
        const names = parseIpAddrJson(IP_ADDR_JSON, compileInterfacesPattern(pattern)).interfaces.map((i) => i.name)
        expect(names).to.deep.equal(want)
      })
    }

    it('default pattern matches eth1..ethN only', () => {
      const matches = ['eth0', 'eth1', 'eth9', 'eth10', 'eth01', 'eth1.100', 'xeth1'].filter((n) => defaultPattern.test(n))
      expect(matches).to.deep.equal(['eth1', 'eth9', 'eth10'])
    })

    it('names a broken pattern', () => {
      expect(() => compileInterfacesPattern('eth[')).to.throw(/^interfaces pattern "eth\[" is not a valid regular expression: /)
    })

    it('rejects output that is not JSON', () => {
      expect(() => parseIpAddrJson('Device "x" does not exist.', defaultPattern)).to.throw(/^ip -j addr show: output is not JSON: /)
    })

    it('rejects a malformed address', () => {
      const json = JSON.stringify([{ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.300', prefixlen: 24}]}])
      expect(() => parseIpAddrJson(json, defaultPattern)).to.throw('ip -j addr show: interface eth1 has a malformed IPv4 address')
    })
  })

  describe('sysctl', () => {
    function sysctlRunner(values: Record<string, string>) {
      return new RecordingRunner((call) => {
        if (call.args[0] === '-n') return {stdout: call.args.slice(1).map((key) => `${values[key] ?? ''}\n`).join('')}
        if (call.args[0] === '-w') {
          for (const assignment of call.args.slice(1)) {
            const [key, value] = assignment.split('=') as [string, string]
            values[key] = value
          }
          return {}
        }
        return new Error(`unexpected ${line(call)}`)
      })
    }

    it('accepts ip_forward=1', async () => {
      const runner = sysctlRunner({'net.ipv4.ip_forward': '1'})
      await checkIpForwarding(runner)
      expect(runner.calls.map(line)).to.deep.equal(['sysctl -n net.ipv4.ip_forward'])
    })

    it('refuses ip_forward=0 saying how to fix it', async () => {
      const runner = sysctlRunner({'net.ipv4.ip_forward': '0'})
      const error = await checkIpForwarding(runner).catch((e: Error) => e)
      expect(error).to.be.instanceOf(Error)
      expect((error as Error).message).to.match(/^net\.ipv4\.ip_forward is 0: .*sysctl -w net\.ipv4\.ip_forward=1/)
    })

    const rpCases: {desc: string; all: string; own: Record<string, string>; changed: string[]}[] = [
      {desc: 'strict interface', all: '0', own: {eth1: '1', eth2: '2'}, changed: ['eth1']},
      {desc: 'strict via conf.all', all: '1', own: {eth1: '0', eth2: '2'}, changed: ['eth1']},
      {desc: 'nothing strict', all: '0', own: {eth1: '0', eth2: '2'}, changed: []},
      {desc: 'loose all', all: '2', own: {eth1: '1', eth2: '0'}, changed: []},
      {desc: 'two strict of three', all: '1', own: {eth1: '0', eth2: '1', eth3: '2'}, changed: ['eth1', 'eth2']},
    ]
    for (const c of rpCases) {
      it(`rp_filter: ${c.desc}`, async () => {
        const values: Record<string, string> = {'net/ipv4/conf/all/rp_filter': c.all}
        for (const [name, value] of Object.entries(c.own)) values[`net/ipv4/conf/${name}/rp_filter`] = value
        const runner = sysctlRunner(values)
        const changes = await relaxReversePathFilter(runner, Object.keys(c.own))
        expect(changes.map((ch) => ch.interface)).to.deep.equal(c.changed)
        for (const name of c.changed) expect(values[`net/ipv4/conf/${name}/rp_filter`]).to.equal('2')
        // One process reads, and one writes when anything must change.
        expect(runner.calls.map(line)).to.deep.equal([
          `sysctl -n ${['all', ...Object.keys(c.own)].map((name) => `net/ipv4/conf/${name}/rp_filter`).join(' ')}`,
          ...(c.changed.length > 0 ? [`sysctl -w ${c.changed.map((name) => `net/ipv4/conf/${name}/rp_filter=2`).join(' ')}`] : []),
        ])
      })
    }

    it('keeps a VLAN interface name in one sysctl path component', async () => {
      const values: Record<string, string> = {'net/ipv4/conf/all/rp_filter': '0', 'net/ipv4/conf/eth1.100/rp_filter': '1'}
      const runner = sysctlRunner(values)
      await relaxReversePathFilter(runner, ['eth1.100'])
      expect(runner.calls.map(line)).to.include('sysctl -w net/ipv4/conf/eth1.100/rp_filter=2')
    })

    it('rejects an rp_filter value it does not understand', async () => {
      const runner = sysctlRunner({'net/ipv4/conf/all/rp_filter': '0', 'net/ipv4/conf/eth1/rp_filter': ''})
      const error = await relaxReversePathFilter(runner, ['eth1']).catch((e: Error) => e)
      expect((error as Error).message).to.equal('rp_filter of eth1 is "", expected 0, 1 or 2')
    })
  })

  describe('tools', () => {
    const versions: Record<string, string> = {
      iptables: 'iptables v1.8.9 (nf_tables)\n',
      ipset: 'ipset v7.17, protocol version: 7\n',
      ip: 'ip utility, iproute2-6.1.0, libbpf 1.1.2\n',
    }
    function toolRunner(present: Record<string, string>) {
      return new RecordingRunner((call) =>
        call.command in present ? {stdout: present[call.command]} : new CommandError(call.command, call.args, undefined, ''),
      )
    }

    it('reports versions, the iptables flavour and how to install what is missing', async () => {
      const runner = toolRunner(versions)
      const report = await checkTools(runner, ['iptables', 'ipset', 'ip', 'conntrack', 'nft'])
      expect(runner.calls.map(line)).to.deep.equal([
        'iptables --version',
        'ipset --version',
        'ip -V',
        'conntrack --version',
        'nft --version',
      ])
      expect(report).to.deep.equal({
        iptablesFlavour: 'nf_tables',
        tools: [
          {name: 'iptables', present: true, version: 'iptables v1.8.9 (nf_tables)'},
          {name: 'ipset', present: true, version: 'ipset v7.17, protocol version: 7'},
          {name: 'ip', present: true, version: 'ip utility, iproute2-6.1.0, libbpf 1.1.2'},
          {name: 'conntrack', present: false, install: 'apt-get install conntrack'},
          {name: 'nft', present: false, install: 'apt-get install nftables'},
        ],
      })
      expect(() => assertToolsPresent(report)).to.throw(
        'missing tools: conntrack, nft; on Debian/Ubuntu install with `apt-get install conntrack nftables`',
      )
    })

    it('starts every version command before the first one answers', async () => {
      const answers: (() => void)[] = []
      const runner = {
        run: (command: string) =>
          new Promise<{stdout: string; stderr: string; exitCode: number}>((resolve) =>
            answers.push(() => resolve({stdout: versions[command as keyof typeof versions] ?? `${command} 1.0`, stderr: '', exitCode: 0})),
          ),
      }
      const report = checkTools(runner, ['iptables', 'ipset', 'ip', 'conntrack', 'nft'])
      await new Promise((resolve) => setImmediate(resolve))
      // Asked one after the other, the second would wait for the first's answer.
      expect(answers).to.have.length(5)
      for (const answer of answers) answer()
      expect((await report).tools.map((tool) => tool.name)).to.deep.equal(['iptables', 'ipset', 'ip', 'conntrack', 'nft'])
    })

    it('recognises legacy iptables', async () => {
      const report = await checkTools(toolRunner({iptables: 'iptables v1.8.7 (legacy)\n'}), ['iptables'])
      expect(report.iptablesFlavour).to.equal('legacy')
      expect(() => assertToolsPresent(report)).not.to.throw()
    })

    it('treats a failed exec inside a namespace as missing', async () => {
      const runner = new RecordingRunner((call) => new CommandError(call.command, call.args, 1, 'exec of "ipset" failed: No such file or directory'))
      const report = await checkTools(runner, ['ipset'])
      expect(report.tools).to.deep.equal([{name: 'ipset', present: false, install: 'apt-get install ipset'}])
    })

    it('passes on other failures', async () => {
      const runner = new RecordingRunner((call) => new CommandError(call.command, call.args, 2, 'permission denied'))
      const error = await checkTools(runner, ['nft']).catch((e: Error) => e)
      expect(error).to.be.instanceOf(CommandError)
    })
  })

  describe('conntrack', () => {
    const ADMITTED = {any: 0xff00000, none: 0x40000}
    const LIST = [
      // DNATed to the current target: stays.
      'tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.0.10 sport=40001 dport=80 src=198.19.100.10 dst=198.18.4.1 sport=8080 dport=40001 [ASSURED] mark=0 use=1',
      // DNATed to the VIP smartnat's rule named before: stale.
      'tcp      6 431999 ESTABLISHED src=198.18.1.3 dst=198.18.0.10 sport=40002 dport=80 src=198.19.100.9 dst=198.18.4.1 sport=8080 dport=40002 [ASSURED] mark=0 use=1',
      // Same old VIP, another client: deleted by the same filter.
      'tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.0.10 sport=40003 dport=80 src=198.19.100.9 dst=198.18.4.1 sport=8080 dport=40003 [ASSURED] mark=0 use=1',
      // A connection to the host itself on a mapped port: not translated, stays.
      'tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.0.10 sport=40004 dport=80 src=198.18.0.10 dst=198.18.1.2 sport=80 dport=40004 [ASSURED] mark=0 use=1',
      // Old servicePort on UDP: stale.
      'udp      17 29 src=198.18.1.2 dst=198.18.0.10 sport=5000 dport=53 [UNREPLIED] src=198.19.100.10 dst=198.18.4.1 sport=5353 dport=5000 mark=0 use=1',
      // An unmapped port: none of our business.
      'tcp      6 100 ESTABLISHED src=198.18.1.2 dst=198.18.0.10 sport=40005 dport=22 src=198.19.100.7 dst=198.18.4.1 sport=22 dport=40005 [ASSURED] mark=0 use=1',
      'icmp     1 29 src=198.18.1.2 dst=198.18.0.10 type=8 code=0 id=7 src=198.18.0.10 dst=198.18.1.2 type=0 code=0 id=7 mark=0 use=1',
      // Admitted by smartnat (interface 1's mark) and answered by a pod this host translated on to: stale.
      'tcp      6 431999 ESTABLISHED src=198.18.1.4 dst=198.18.0.10 sport=40006 dport=80 src=198.19.200.11 dst=198.18.4.1 sport=8080 dport=40006 [ASSURED] mark=1048576 use=1',
      // Another DNAT's connection to the mapped port (a source smartnat does not admit): stays.
      'tcp      6 431999 ESTABLISHED src=198.18.9.9 dst=198.18.0.10 sport=40007 dport=80 src=198.18.7.7 dst=198.18.9.9 sport=80 dport=40007 [ASSURED] mark=0 use=1',
      // An egress connection's mark is not an admitted one: stays.
      'tcp      6 431999 ESTABLISHED src=198.18.1.5 dst=198.18.0.10 sport=40008 dport=80 src=198.19.200.12 dst=198.18.4.1 sport=8080 dport=40008 [ASSURED] mark=1310720 use=1',
    ].join('\n')

    function conntrackRunner(list: string) {
      return new RecordingRunner((call) => {
        if (call.args[0] === '-L') return {stdout: `${list}\n`, stderr: 'conntrack v1.4.7 (conntrack-tools): 10 flow entries have been shown.\n'}
        if (call.args[0] === '-D') return {stderr: 'conntrack v1.4.7 (conntrack-tools): 2 flow entries have been deleted.\n'}
        return new Error(`unexpected ${line(call)}`)
      })
    }

    it('parses original and reply tuples and the mark', () => {
      const flows = parseConntrackList(LIST)
      expect(flows).to.have.length(10)
      expect(flows[4]).to.deep.equal({
        protocol: 'udp',
        original: {src: '198.18.1.2', dst: '198.18.0.10', sport: 5000, dport: 53},
        reply: {src: '198.19.100.10', dst: '198.18.4.1', sport: 5353, dport: 5000},
        mark: 0,
      })
      expect(flows[6]).to.deep.equal({
        protocol: 'icmp',
        original: {src: '198.18.1.2', dst: '198.18.0.10'},
        reply: {src: '198.18.0.10', dst: '198.18.1.2'},
        mark: 0,
      })
      expect(flows[7]!.mark).to.equal(0x100000)
    })

    it('deletes flows of a mapped endpoint that smartnat translated to anything but the current target, and only those', async () => {
      const runner = conntrackRunner(LIST)
      const deleted = await deleteStaleNatFlows(
        runner,
        [
          {address: ip('198.18.0.10'), protocol: 'tcp', port: 80, target: {ip: ip('198.19.100.10'), port: 8080}, formerTargets: [{ip: ip('198.19.100.9'), port: 8080}]},
          {address: ip('198.18.0.10'), protocol: 'udp', port: 53, target: {ip: ip('198.19.100.10'), port: 53}, formerTargets: [{ip: ip('198.19.100.10'), port: 5353}]},
        ],
        ADMITTED,
      )
      expect(runner.calls.map(line)).to.deep.equal([
        'conntrack -L --orig-dst 198.18.0.10',
        'conntrack -D -p tcp --orig-dst 198.18.0.10 --orig-port-dst 80 --reply-src 198.19.100.9 --reply-port-src 8080',
        'conntrack -D -p udp --orig-dst 198.18.0.10 --orig-port-dst 53 --reply-src 198.19.100.10 --reply-port-src 5353',
        'conntrack -D -p tcp --orig-dst 198.18.0.10 --orig-port-dst 80 --reply-src 198.19.200.11 --reply-port-src 8080 --mark 0x100000/0xff40000',
      ])
      expect(deleted).to.equal(6)
    })

    it('deletes the flows smartnat translated for an endpoint that is no longer mapped, not another DNAT’s', async () => {
      const runner = conntrackRunner(LIST)
      await deleteStaleNatFlows(runner, [{address: ip('198.18.0.10'), protocol: 'tcp', port: 80, formerTargets: [{ip: ip('198.19.100.10'), port: 8080}]}], ADMITTED)
      expect(runner.calls.map(line).slice(1)).to.deep.equal([
        'conntrack -D -p tcp --orig-dst 198.18.0.10 --orig-port-dst 80 --reply-src 198.19.100.10 --reply-port-src 8080',
        'conntrack -D -p tcp --orig-dst 198.18.0.10 --orig-port-dst 80 --reply-src 198.19.200.11 --reply-port-src 8080 --mark 0x100000/0xff40000',
      ])
    })

    it('treats "nothing matched" as zero deleted, not an error', async () => {
      const runner = new RecordingRunner(() => ({exitCode: 1, stderr: 'conntrack v1.4.7 (conntrack-tools): 0 flow entries have been deleted.\n'}))
      expect(await deleteConntrackFlows(runner, {protocol: 'udp', replySrc: ip('198.19.200.11')})).to.equal(0)
      expect(runner.calls.map(line)).to.deep.equal(['conntrack -D -p udp --reply-src 198.19.200.11'])
    })

    it('still fails on other exit codes', async () => {
      const runner = new RecordingRunner(() => ({exitCode: 2, stderr: 'Operation not permitted'}))
      const error = await deleteConntrackFlows(runner, {replySrc: ip('198.19.200.11')}).catch((e: Error) => e)
      expect(error).to.be.instanceOf(CommandError)
    })

    it('refuses a port without a protocol', async () => {
      const error = await deleteConntrackFlows(new RecordingRunner(), {origDstPort: 80}).catch((e: Error) => e)
      expect((error as Error).message).to.equal('conntrack filter: a port needs a protocol')
    })

    it('deletes the flows of mapped endpoints answered by vanished pods, and no other flow of those pods', async () => {
      const POD_LIST = [
        // Through smartnat's endpoints: deleted, one filter per endpoint.
        'tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.0.10 sport=40001 dport=80 src=198.19.200.11 dst=198.18.4.1 sport=8080 dport=40001 [ASSURED] mark=1048576 use=1',
        'tcp      6 431999 ESTABLISHED src=198.18.1.3 dst=198.18.0.10 sport=40002 dport=80 src=198.19.200.11 dst=198.18.4.1 sport=8080 dport=40002 [ASSURED] mark=1048576 use=1',
        'udp      17 29 src=198.18.4.9 dst=198.18.0.11 sport=5000 dport=53 src=198.19.200.11 dst=198.18.4.1 sport=5353 dport=5000 mark=0 use=1',
        // The host's own connection to the pod: stays.
        'tcp      6 431999 ESTABLISHED src=198.18.4.1 dst=198.19.200.11 sport=40003 dport=8080 src=198.19.200.11 dst=198.18.4.1 sport=8080 dport=40003 [ASSURED] mark=0 use=1',
        // Another DNAT's port on the same address: stays.
        'tcp      6 431999 ESTABLISHED src=198.18.1.2 dst=198.18.0.10 sport=40004 dport=2222 src=198.19.200.11 dst=198.18.1.2 sport=22 dport=40004 [ASSURED] mark=0 use=1',
      ].join('\n')
      const runner = new RecordingRunner((call) => {
        if (call.args[0] === '-L') return {stdout: call.args.includes('198.19.200.11') ? `${POD_LIST}\n` : ''}
        return {stderr: 'conntrack v1.4.7 (conntrack-tools): 1 flow entries have been deleted.\n'}
      })
      const endpoints = [
        {address: ip('198.18.0.10'), protocol: 'tcp' as const, port: 80},
        {address: ip('198.18.0.11'), protocol: 'udp' as const, port: 53},
      ]
      expect(await deleteFlowsFromEndpoints(runner, [ip('198.19.200.11'), ip('198.19.200.12')], () => endpoints)).to.equal(2)
      expect(runner.calls.map(line)).to.deep.equal([
        'conntrack -L --reply-src 198.19.200.11',
        'conntrack -D -p tcp --orig-dst 198.18.0.10 --orig-port-dst 80 --reply-src 198.19.200.11',
        'conntrack -D -p udp --orig-dst 198.18.0.11 --orig-port-dst 53 --reply-src 198.19.200.11',
        'conntrack -L --reply-src 198.19.200.12',
      ])
    })
  })

  describe('lock', () => {
    let dir: string
    let path: string
    const others: LockProcess[] = []
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'smartnat-lock-'))
      path = join(dir, 'smartnat.lock')
    })
    afterEach(async () => {
      for (const other of others.splice(0)) other.child.kill('SIGKILL')
      await rm(dir, {recursive: true, force: true})
    })

    /** Another process holding the lock, until it is killed. */
    async function heldElsewhere(purpose: string): Promise<LockProcess> {
      const holder = startLockProcess([path, purpose, 'hold'])
      others.push(holder)
      expect(await holder.said).to.equal(`held ${holder.child.pid}`)
      return holder
    }

    it('lets one holder in and names it to the next', async () => {
      const nested = join(dir, 'run', 'smartnat.lock')
      const lock = await acquireLock({path: nested, purpose: 'watch'})
      const error = await acquireLock({path: nested, waitMs: 0}).catch((e: Error) => e)
      expect(error).to.be.instanceOf(LockHeldError)
      expect((error as Error).message).to.match(new RegExp(`^${nested} is held by smartnat watch \\(pid ${process.pid}, since .*\\); gave up after waiting \\d+ ms$`))
      await lock.release()
      const again = await acquireLock({path: nested})
      await again.release()
    })

    it('waits for the holder, saying who it is, and takes the lock once the holder lets go', async () => {
      const holder = await heldElsewhere('watch')
      const seen: (LockHolder | undefined)[] = []
      const second = acquireLock({path, waitMs: 20_000, onWait: (h) => {
        seen.push(h)
        holder.child.stdin!.end()
      }})
      const lock = await second
      expect(seen).to.have.length(1)
      expect(seen[0]).to.include({pid: holder.child.pid, purpose: 'watch'})
      expect(await holder.exited, 'the holder had let go').to.equal(0)
      await lock.release()
    })

    it('stays held when its taker keeps no reference to it and the garbage collector runs', async () => {
      const holder = startLockProcess([path, 'watch', 'drop'])
      others.push(holder)
      expect(await holder.said).to.equal(`held ${holder.child.pid}`)
      expect(await inspectLock(path)).to.deep.include({held: true})
    })

    it('gives up after the timeout, naming the holder', async () => {
      const holder = await heldElsewhere('sync')
      let waits = 0
      // Long enough that the first, non-blocking try (a flock process) ends within it on a loaded machine: a try that outlasts the wait gives up without announcing one.
      const error = await acquireLock({path, waitMs: 1000, onWait: () => waits++}).catch((e: Error) => e)
      expect(error).to.be.instanceOf(LockHeldError)
      expect((error as LockHeldError).holder).to.include({pid: holder.child.pid, purpose: 'sync'})
      expect((error as LockHeldError).waitedMs, 'it waited the whole time').to.be.at.least(1000)
      expect(waits).to.equal(1)
    })

    it('is free as soon as a holder is killed, although the file still names it', async () => {
      const holder = await heldElsewhere('watch')
      expect(await inspectLock(path)).to.deep.include({held: true})
      holder.child.kill('SIGKILL')
      await holder.exited
      const state = await inspectLock(path)
      expect(state.held).to.equal(false)
      expect(state.holder).to.include({pid: holder.child.pid, purpose: 'watch'})
      const lock = await acquireLock({path, waitMs: 0, purpose: 'sync'})
      expect(JSON.parse(await readFile(path, 'utf8'))).to.include({pid: process.pid, purpose: 'sync'})
      await lock.release()
    })

    it('leaves who holds the lock to the kernel, not to what the file says', async () => {
      await writeFile(path, JSON.stringify({pid: process.pid, acquiredAt: 'then', purpose: 'watch'}))
      expect(await inspectLock(path)).to.deep.include({held: false})
      const lock = await acquireLock({path, waitMs: 0})
      await lock.release()
    })

    it('clears its description when it lets go, once however often asked', async () => {
      const lock = await acquireLock({path, purpose: 'sync'})
      expect(await inspectLock(path)).to.deep.include({held: true, holder: {...JSON.parse(await readFile(path, 'utf8'))}})
      await lock.release()
      await lock.release()
      expect(await readFile(path, 'utf8')).to.equal('')
      expect(await inspectLock(path)).to.deep.equal({held: false, holder: undefined})
    })

    it('releases when the locked work fails', async () => {
      const error = await withLock({path}, async () => {
        throw new Error('apply failed')
      }).catch((e: Error) => e)
      expect((error as Error).message).to.equal('apply failed')
      await (await acquireLock({path})).release()
    })

    it('never lets two processes in at once, when they race for a lock whose holder was killed', async function () {
      this.timeout(120_000)
      const journal = join(dir, 'journal')
      await writeFile(journal, '')
      const ROUNDS = 3
      const TURNS = 3
      for (let round = 0; round < ROUNDS; round++) {
        const dead = await heldElsewhere('watch')
        dead.child.kill('SIGKILL')
        await dead.exited
        const racers = [0, 1].map(() => startLockProcess([path, 'sync', 'journal', journal, String(TURNS)]))
        others.push(...racers)
        for (const racer of racers) expect(await racer.said).to.equal('ready')
        for (const racer of racers) racer.child.stdin!.write('go\n')
        expect(await Promise.all(racers.map((r) => r.exited))).to.deep.equal([0, 0])
      }
      const entries = (await readFile(journal, 'utf8')).trim().split('\n')
      expect(entries).to.have.length(ROUNDS * 2 * TURNS * 2)
      for (let i = 0; i < entries.length; i += 2) {
        expect(entries[i]).to.match(/^in \d+$/)
        expect(entries[i + 1], `entry ${i + 1}`).to.equal(entries[i]!.replace('in', 'out'))
      }
    })
  })
})
