import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {expect} from 'chai'
import {iptablesBackend} from '../../src/lib/backend/iptables/backend.js'
import {LockHeldError, acquireLock, inspectLock} from '../../src/lib/host/lock.js'
import {RecordingRunner, type RecordedCall} from '../support/recording-runner.js'
import {flushOwned, flushedCount, type FlushReport} from '../../src/lib/sync/flush.js'
import {smartnat} from '../support/smartnat-cli.js'
import {IPSET_SAVE, IPTABLES_SAVE, IP_ROUTE_JSON, IP_RULE_JSON} from './fixtures/kernel-capture.js'

const READS = ['iptables-save', 'ipset save', 'ip -4 -j rule show', 'ip -4 -j route show table all']
const EMPTY_KERNEL = {
  'iptables-save': '*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -s 198.18.9.0/24 -j ACCEPT\nCOMMIT\n',
  'ipset save': '',
  'ip -4 -j rule show': '[{"priority":0,"src":"all","table":"local"},{"priority":32766,"src":"all","table":"main"}]',
  'ip -4 -j route show table all': '[]',
}
const CAPTURED_KERNEL = {
  'iptables-save': IPTABLES_SAVE,
  'ipset save': IPSET_SAVE,
  'ip -4 -j rule show': IP_RULE_JSON,
  'ip -4 -j route show table all': IP_ROUTE_JSON,
}

/** A kernel that prints `state` when read and accepts every write. */
function fakeKernel(state: Record<string, string>): RecordingRunner {
  return new RecordingRunner((call) => ({stdout: state[[call.command, ...call.args].join(' ')] ?? ''}))
}

function writesOf(runner: RecordingRunner): string[] {
  return runner.calls.map((c: RecordedCall) => [c.command, ...c.args].join(' ')).filter((line) => !READS.includes(line))
}

describe('flushOwned', () => {
  let dir: string
  let lock: string

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-flush-'))
    lock = join(dir, 'smartnat.lock')
  })

  afterEach(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('a dry run lists what smartnat owns, asks nothing and writes nothing', async () => {
    const runner = fakeKernel(CAPTURED_KERNEL)
    let asked = false
    const outcome = await flushOwned(iptablesBackend(runner), {dryRun: true, lock: {path: lock}, confirm: async () => (asked = true)})
    expect(asked).to.equal(false)
    expect(writesOf(runner)).to.deep.equal([])
    expect(outcome).to.include({dryRun: true, changed: true, declined: false})
    expect(outcome.removed.sets).to.deep.equal(['SNM-ALLOW', 'SNM-ENDPOINTS'])
    expect(flushedCount(outcome)).to.equal(5 + 6 + 2 + 1 + 2)
  })

  it('shows the preview to the confirmation, and a "no" writes nothing and reports nothing removed', async () => {
    const runner = fakeKernel(CAPTURED_KERNEL)
    let preview: FlushReport | undefined
    const outcome = await flushOwned(iptablesBackend(runner), {
      dryRun: false,
      lock: {path: lock},
      confirm: async (p) => {
        preview = p
        return false
      },
    })
    expect(preview?.removed.ipRules).to.deep.equal(['priority 7001 fwmark 0x100000/0xff00000 table 7001'])
    expect(writesOf(runner)).to.deep.equal([])
    expect(outcome).to.deep.equal({dryRun: false, changed: false, declined: true, removed: {jumps: [], chains: [], sets: [], ipRules: [], routes: []}})
  })

  it('a "yes" flushes under the lock and lets go of it afterwards', async () => {
    const runner = fakeKernel(CAPTURED_KERNEL)
    const outcome = await flushOwned(iptablesBackend(runner), {dryRun: false, lock: {path: lock}, confirm: async () => true})
    expect(writesOf(runner)).to.deep.equal(['iptables-restore --noflush --wait', 'ipset restore -exist', 'ip -batch -'])
    expect(outcome).to.include({dryRun: false, changed: true, declined: false})
    expect(outcome.removed.chains).to.include('nat: SNM-A-1a2b3c4d')
    expect(await inspectLock(lock)).to.deep.equal({held: false, holder: undefined})
  })

  it('asks nothing when nothing of smartnat’s is installed', async () => {
    const runner = fakeKernel(EMPTY_KERNEL)
    let asked = false
    const outcome = await flushOwned(iptablesBackend(runner), {dryRun: false, lock: {path: lock}, confirm: async () => (asked = true)})
    expect(asked).to.equal(false)
    expect(writesOf(runner)).to.deep.equal([])
    expect(outcome).to.deep.equal({dryRun: false, changed: false, declined: false, removed: {jumps: [], chains: [], sets: [], ipRules: [], routes: []}})
  })

  it('writes nothing while another run holds the lock, and names the holder', async () => {
    const runner = fakeKernel(CAPTURED_KERNEL)
    const held = await acquireLock({path: lock, purpose: 'watch'})
    try {
      const error = await flushOwned(iptablesBackend(runner), {dryRun: false, lock: {path: lock, waitMs: 0}}).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(error).to.be.instanceOf(LockHeldError)
      expect((error as Error).message).to.include(`held by smartnat watch (pid ${process.pid}`)
      expect(writesOf(runner)).to.deep.equal([])
    } finally {
      await held.release()
    }
  })
})

describe('smartnat flush (command)', function () {
  this.timeout(30_000)

  it('refuses without a terminal and without --yes, before running anything', async () => {
    // A namespace that does not exist: any command run in it would fail with a different message.
    const result = await smartnat(['flush', '--netns', 'snm-no-such-namespace', '--lock-file', join(tmpdir(), `smartnat-flush-${process.pid}.lock`)])
    expect(result.code).to.equal(2)
    expect(result.stderr).to.include('flush removes every rule smartnat installed and asks first, but stdin is not a terminal; pass --yes to flush without asking')
  })

  it('shows its flags and examples in the help', async () => {
    const result = await smartnat(['flush', '--help'])
    expect(result.code).to.equal(0)
    expect(result.stdout).to.include('--dry-run').and.include('-y, --yes').and.include('--netns=NAME').and.include('smartnat flush --yes --json')
  })
})
