import {expect} from 'chai'
import {chmod, mkdir, mkdtemp, readFile, rm, symlink, unlink, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {CommandError} from '../../src/lib/host/runner.js'
import {toolVersionsFile, toolVersionsPath} from '../../src/lib/host/tool-versions.js'
import {checkTools, type ToolName} from '../../src/lib/host/tools.js'
import {probeHost} from '../../src/lib/status/host.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'

const line = (call: RecordedCall) => [call.command, ...call.args].join(' ')

const VERSIONS: Record<string, string> = {
  iptables: 'iptables v1.8.9 (nf_tables)\n',
  ipset: 'ipset v7.17, protocol version: 7\n',
  ip: 'ip utility, iproute2-6.1.0, libbpf 1.1.2\n',
  conntrack: 'conntrack v1.4.7 (conntrack-tools)\n',
}
const NAMES: ToolName[] = ['iptables', 'ipset', 'ip', 'conntrack']

// Answers version commands as the tools do; sysctl reads of status as an empty host's.
const toolRunner = (versions: Record<string, string> = VERSIONS) =>
  new RecordingRunner((call) => {
    if (call.command === 'sysctl') return {stdout: '0\n0\n'}
    const stdout = versions[call.command]
    return stdout === undefined ? new CommandError(call.command, call.args, undefined, `spawn ${call.command} ENOENT`) : {stdout}
  })

describe('tool versions kept for their executables', () => {
  let dir: string
  let bin: string
  let file: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-tool-versions-'))
    bin = join(dir, 'bin')
    file = join(dir, 'run', 'tool-versions.json')
    await mkdir(bin)
    await mkdir(join(dir, 'run'))
    for (const name of NAMES) await executable(join(bin, name), `#!/bin/sh\n# ${name}\n`)
  })
  afterEach(() => rm(dir, {recursive: true, force: true}))

  const executable = async (path: string, text: string) => {
    await writeFile(path, text)
    await chmod(path, 0o755)
  }
  // Each check with a cache of its own, as each run of smartnat has.
  const check = async (names: ToolName[] = NAMES, runner = toolRunner(), path = file) => ({runner, report: await checkTools(runner, names, toolVersionsFile(path, `${bin}:/nonexistent`))})

  it('is kept beside the lock', () => {
    expect(toolVersionsPath('/run/smartnat/smartnat.lock')).to.equal('/run/smartnat/tool-versions.json')
  })

  it('asks each tool once, then not while its executable is unchanged', async () => {
    const first = await check()
    expect(first.runner.calls.map(line)).to.deep.equal(['iptables --version', 'ipset --version', 'ip -V', 'conntrack --version'])
    const second = await check()
    expect(second.runner.calls).to.deep.equal([])
    expect(second.report).to.deep.equal(first.report)
    expect(second.report).to.deep.equal({
      iptablesFlavour: 'nf_tables',
      tools: [
        {name: 'iptables', present: true, version: 'iptables v1.8.9 (nf_tables)'},
        {name: 'ipset', present: true, version: 'ipset v7.17, protocol version: 7'},
        {name: 'ip', present: true, version: 'ip utility, iproute2-6.1.0, libbpf 1.1.2'},
        {name: 'conntrack', present: true, version: 'conntrack v1.4.7 (conntrack-tools)'},
      ],
    })
  })

  it('asks a tool again when its binary changed', async () => {
    await check()
    await executable(join(bin, 'ipset'), '#!/bin/sh\n# ipset, upgraded\n')
    const {runner, report} = await check(NAMES, toolRunner({...VERSIONS, ipset: 'ipset v7.19, protocol version: 7\n'}))
    expect(runner.calls.map(line)).to.deep.equal(['ipset --version'])
    expect(report.tools[1]).to.deep.equal({name: 'ipset', present: true, version: 'ipset v7.19, protocol version: 7'})
    expect((await check()).runner.calls).to.deep.equal([])
  })

  it('asks iptables again when its name leads to another executable (legacy instead of nf_tables)', async () => {
    await executable(join(dir, 'xtables-nft-multi'), '#!/bin/sh\n# nft\n')
    await executable(join(dir, 'xtables-legacy-multi'), '#!/bin/sh\n# legacy\n')
    await unlink(join(bin, 'iptables'))
    await symlink(join(dir, 'xtables-nft-multi'), join(bin, 'iptables'))
    await check(['iptables'])
    await unlink(join(bin, 'iptables'))
    await symlink(join(dir, 'xtables-legacy-multi'), join(bin, 'iptables'))
    const {runner, report} = await check(['iptables'], toolRunner({iptables: 'iptables v1.8.9 (legacy)\n'}))
    expect(runner.calls.map(line)).to.deep.equal(['iptables --version'])
    expect(report.iptablesFlavour).to.equal('legacy')
  })

  it('asks every tool when the file is corrupt, and keeps their answers again', async () => {
    await check()
    await writeFile(file, '{"iptables": {"file": ')
    expect((await check()).runner.calls.map(line)).to.deep.equal(['iptables --version', 'ipset --version', 'ip -V', 'conntrack --version'])
    expect((await check()).runner.calls).to.deep.equal([])
    await writeFile(file, JSON.stringify({iptables: {file: join(bin, 'iptables'), stamp: 7, output: 'iptables v0 (legacy)'}}))
    expect((await check(['iptables'])).runner.calls.map(line)).to.deep.equal(['iptables --version'])
  })

  it('reports a missing tool as without the file, and never keeps it', async () => {
    await unlink(join(bin, 'conntrack'))
    for (let i = 0; i < 2; i++) {
      const {runner, report} = await check(['conntrack'], toolRunner({}))
      expect(runner.calls.map(line)).to.deep.equal(['conntrack --version'])
      expect(report.tools).to.deep.equal([{name: 'conntrack', present: false, install: 'apt-get install conntrack'}])
    }
    // Found on the path but not startable (a namespace's exec failing): missing too, and not kept.
    for (let i = 0; i < 2; i++) {
      const {runner, report} = await check(['ip'], toolRunner({}))
      expect(runner.calls.map(line)).to.deep.equal(['ip -V'])
      expect(report.tools).to.deep.equal([{name: 'ip', present: false, install: 'apt-get install iproute2'}])
    }
    const kept = await readFile(file, 'utf8').catch(() => '{}')
    expect(Object.keys(JSON.parse(kept) as object)).to.deep.equal([])
  })

  it('does not keep a version command that failed', async () => {
    const failing = () => new RecordingRunner((call) => new CommandError(call.command, call.args, 1, 'ipset v7.17: Kernel error received: Operation not permitted'))
    for (let i = 0; i < 2; i++) {
      const runner = failing()
      let thrown: unknown
      await checkTools(runner, ['ipset'], toolVersionsFile(file, bin)).catch((error: unknown) => (thrown = error))
      expect(thrown).to.be.instanceOf(CommandError)
      expect(runner.calls.map(line)).to.deep.equal(['ipset --version'])
    }
  })

  it('asks every time where the file cannot be written', async () => {
    await writeFile(join(dir, 'not-a-directory'), '')
    const unwritable = join(dir, 'not-a-directory', 'tool-versions.json')
    for (let i = 0; i < 2; i++) {
      const {runner, report} = await check(['iptables'], toolRunner(), unwritable)
      expect(runner.calls.map(line)).to.deep.equal(['iptables --version'])
      expect(report.iptablesFlavour).to.equal('nf_tables')
    }
  })

  it("leaves only the global sysctls to status's probes once the versions are known", async () => {
    const probe = async () => {
      const runner = toolRunner()
      const probes = await probeHost(runner, NAMES, toolVersionsFile(file, bin))
      return {calls: runner.calls.map(line), probes}
    }
    const first = await probe()
    expect(first.calls).to.have.length(5)
    const second = await probe()
    expect(second.calls).to.deep.equal(['sysctl -n net.ipv4.ip_forward net/ipv4/conf/all/rp_filter'])
    expect(second.probes).to.deep.equal(first.probes)
  })
})
