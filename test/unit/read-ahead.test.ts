/** Reads started ahead (src/lib/host/read-ahead.ts) with real processes: kept, started at the next run, taken over, ended. */
import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {chmodSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {configLockFile, lockPathOf} from '../../src/cli/read-ahead.js'
import {parseYaml} from '../../src/lib/source/yaml.js'
import {DEFAULT_LOCK_PATH} from '../../src/lib/host/lock.js'
import {readAheadKey, startReadAhead} from '../../src/lib/host/read-ahead.js'
import {ExecRunner} from '../../src/lib/host/runner.js'
import {isAlive} from '../support/processes.js'

const SLOT = Symbol.for('smartnat.read-ahead')
const forgetSlot = () => delete (globalThis as Record<symbol, unknown>)[SLOT]

/** Waits, up to 10 s, for `condition`. */
async function until(what: string, condition: () => boolean): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10))
  expect(condition(), what).to.equal(true)
}

describe('reads started ahead', function () {
  this.timeout(20_000)
  const runner = new ExecRunner({timeoutSeconds: 10})
  const KEY = readAheadKey(['status', '--from-file', 'mappings/'], '/srv', {})
  let dir: string
  let lockPath: string
  let log: string
  let input: string
  const kept = () => join(dir, 'read-ahead.json')
  const logLines = () => (existsSync(log) ? readFileSync(log, 'utf8').split('\n').filter(Boolean) : [])
  /** A read that prints the input file, then says it ran (its pid, in the log). */
  const readScript = () => `cat ${input}; echo $$ >> ${log}`
  const read = () => runner.run('sh', ['-c', readScript()], {readAhead: true})

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-read-ahead-'))
    chmodSync(dir, 0o755)
    lockPath = join(dir, 'smartnat.lock')
    log = join(dir, 'ran.log')
    input = join(dir, 'input')
    writeFileSync(input, 'before\n')
    forgetSlot()
  })
  afterEach(async () => {
    forgetSlot()
    await rm(dir, {recursive: true, force: true})
  })

  /** A first run of the command line: nothing kept yet, so the read runs as asked and is kept. */
  async function firstRun(): Promise<void> {
    startReadAhead(lockPath, KEY)
    expect((await read()).stdout).to.equal('before\n')
    forgetSlot()
  }

  it('keeps the read a command line asked for first, beside the lock, for this user alone', async () => {
    await firstRun()
    expect(logLines()).to.have.length(1)
    const {entries} = JSON.parse(readFileSync(kept(), 'utf8')) as {entries: unknown[]}
    expect(entries).to.deep.equal([{key: KEY, file: 'sh', args: ['-c', readScript()], timeoutMs: 10_000, killAfterMs: 5000}])
    expect(statSync(kept()).mode & 0o777).to.equal(0o600)
  })

  it('runs the read as asked, keeping nothing and leaving nothing, where the lock\'s directory cannot be made', async () => {
    const file = join(dir, 'a-file')
    writeFileSync(file, '')
    startReadAhead(join(file, 'smartnat.lock'), KEY)
    expect((await read()).stdout).to.equal('before\n')
    expect(logLines()).to.have.length(1)
    expect(readdirSync(dir).sort()).to.deep.equal(['a-file', 'input', 'ran.log'])
  })

  it('starts the kept read at the next start, and the runner takes it over instead of starting another', async () => {
    await firstRun()
    startReadAhead(lockPath, KEY)
    await until('the read started ahead ran', () => logLines().length === 2)
    // What it read at the start is what the command gets: the process was not started again.
    writeFileSync(input, 'after\n')
    expect((await read()).stdout).to.equal('before\n')
    expect(logLines()).to.have.length(2)
    // Only the first read is looked up: another starts its own process.
    expect((await read()).stdout).to.equal('after\n')
    expect(logLines()).to.have.length(3)
  })

  it('ends the read started ahead when the command asks for another, and keeps that one instead', async () => {
    writeFileSync(kept(), JSON.stringify({entries: [{key: KEY, file: 'sh', args: ['-c', `echo $$ >> ${log}; exec sleep 30`], timeoutMs: 10_000, killAfterMs: 5000}]}))
    chmodSync(kept(), 0o600)
    startReadAhead(lockPath, KEY)
    await until('the read started ahead ran', () => logLines().length === 1)
    const aheadPid = Number(logLines()[0])
    expect((await read()).stdout).to.equal('before\n')
    await until('the read started ahead was ended', () => !isAlive(aheadPid))
    const {entries} = JSON.parse(readFileSync(kept(), 'utf8')) as {entries: {args: string[]}[]}
    expect(entries.map((e) => e.args[1])).to.deep.equal([readScript()])
  })

  it('does not take over a read started with other timeouts', async () => {
    await firstRun()
    startReadAhead(lockPath, KEY)
    await until('the read started ahead ran', () => logLines().length === 2)
    writeFileSync(input, 'after\n')
    const other = new ExecRunner({timeoutSeconds: 20})
    expect((await other.run('sh', ['-c', readScript()], {readAhead: true})).stdout).to.equal('after\n')
  })

  it('keeps the other command lines, the latest first, and starts only the one of this command line', async () => {
    const otherKey = readAheadKey(['status', '-o', 'wide'], '/srv', {})
    writeFileSync(kept(), JSON.stringify({entries: [{key: otherKey, file: 'sh', args: ['-c', `echo other >> ${log}`], timeoutMs: 10_000, killAfterMs: 5000}]}))
    chmodSync(kept(), 0o600)
    await firstRun()
    expect(logLines()).to.have.length(1)
    const {entries} = JSON.parse(readFileSync(kept(), 'utf8')) as {entries: {key: string}[]}
    expect(entries.map((e) => e.key)).to.deep.equal([KEY, otherKey])
  })

  describe('runs what the file says only when no one else could have written it', () => {
    const aheadEntry = (file: string, args: string[]) => JSON.stringify({entries: [{key: KEY, file, args, timeoutMs: 10_000, killAfterMs: 5000}]})
    const marker = () => join(dir, 'started')
    const table: {desc: string; prepare: () => void}[] = [
      {desc: 'a file others may write', prepare: () => chmodSync(kept(), 0o622)},
      {desc: 'a directory others may write', prepare: () => chmodSync(dir, 0o777)},
      {desc: 'another command than a shell', prepare: () => writeFileSync(kept(), aheadEntry('touch', [marker()]))},
      {desc: 'a shell given more than a script', prepare: () => writeFileSync(kept(), aheadEntry('sh', ['-c', `touch ${marker()}`, 'x']))},
      {desc: 'a shell under ip that is not netns exec', prepare: () => writeFileSync(kept(), aheadEntry('ip', ['vrf', 'exec', 'x', 'sh', '-c', `touch ${marker()}`]))},
    ]
    for (const {desc, prepare} of table) {
      it(desc, async () => {
        writeFileSync(kept(), aheadEntry('sh', ['-c', `touch ${marker()}`]))
        chmodSync(kept(), 0o600)
        prepare()
        startReadAhead(lockPath, KEY)
        // A read the file would have started has run by the time a process of the runner's has.
        expect((await read()).stdout).to.equal('before\n')
        expect(existsSync(marker()), 'started what the file says').to.equal(false)
      })
    }

    it('and starts a shell of reads from a file only this user may write', async () => {
      writeFileSync(kept(), aheadEntry('sh', ['-c', `touch ${marker()}`]))
      chmodSync(kept(), 0o600)
      startReadAhead(lockPath, KEY)
      await until('the kept read ran', () => existsSync(marker()))
    })
  })

  it('lets Node.js exit without waiting for a read started ahead that nothing took over, and ends it', async () => {
    const pidFile = join(dir, 'pid')
    writeFileSync(kept(), JSON.stringify({entries: [{key: KEY, file: 'sh', args: ['-c', `echo $$ > ${pidFile}.tmp; mv ${pidFile}.tmp ${pidFile}; exec sleep 30`], timeoutMs: 60_000, killAfterMs: 5000}]}))
    chmodSync(kept(), 0o600)
    const module = new URL('../../src/lib/host/read-ahead.ts', import.meta.url).href
    const child = `const {startReadAhead} = await import(${JSON.stringify(module)}); const {existsSync} = await import('node:fs')
startReadAhead(${JSON.stringify(lockPath)}, ${JSON.stringify(KEY)})
while (!existsSync(${JSON.stringify(pidFile)})) await new Promise((resolve) => setTimeout(resolve, 10))`
    const result = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', child], {encoding: 'utf8', timeout: 20_000})
    expect(result.error, 'the process exited by itself').to.equal(undefined)
    expect(result.status, result.stderr).to.equal(0)
    const pid = Number(readFileSync(pidFile, 'utf8'))
    await until('the read started ahead was ended', () => !isAlive(pid))
  })
})

describe('the lock path a command line names', () => {
  const files: Record<string, string> = {
    '/etc/smartnat/config.yaml': 'backend: nftables\nlock-file: /srv/smartnat/lock\n',
    '/opt/smartnat.yaml': "lock-file: '/opt/run/lock' # beside the daemon's\n",
  }
  const read = (path: string) => files[path]
  const table: {argv: string[]; env?: NodeJS.ProcessEnv; want: string}[] = [
    {argv: ['status'], want: '/srv/smartnat/lock'},
    {argv: ['status', '--lock-file', '/tmp/a.lock'], want: '/tmp/a.lock'},
    {argv: ['status', '--lock-file=/tmp/b.lock', '-o', 'wide'], want: '/tmp/b.lock'},
    {argv: ['status', '--config', '/opt/smartnat.yaml'], want: '/opt/run/lock'},
    {argv: ['status', '--config=/opt/smartnat.yaml', '--lock-file', '/tmp/c.lock'], want: '/tmp/c.lock'},
    {argv: ['status'], env: {SMARTNAT_CONFIG: '/opt/smartnat.yaml'}, want: '/opt/run/lock'},
    {argv: ['status', '--config', '/missing.yaml'], want: DEFAULT_LOCK_PATH},
    {argv: ['status', '--lock-file'], want: '/srv/smartnat/lock'},
  ]
  for (const {argv, env, want} of table) it(`${argv.join(' ')} ${JSON.stringify(env ?? {})} -> ${want}`, () => expect(lockPathOf(argv, env ?? {}, read)).to.equal(want))

  it('reads from a config file the lock-file value its YAML holds, or none, never another', () => {
    const lines = [
      'lock-file: /run/x.lock',
      'lock-file:   /run/x.lock   # the host\'s',
      'lock-file: /run/a#b.lock',
      'lock-file: "/run/quoted lock"',
      "lock-file: 'it''s.lock'",
      'lock-file: "/run/\\x41.lock"',
      'lock-file: ~',
      'lock-file: null',
      'lock-file:',
      'lock-file: [a, b]',
      'lock-file: {path: /x}',
      'lock-file: &anchor /run/y.lock',
      'lock-file: |\n  /run/z.lock',
      'lock-file: >-\n  /run/z.lock',
      '  lock-file: /nested.lock',
      'other:\n  lock-file: /nested.lock',
      'lock-file : /run/spaced.lock',
      'lock-file: /run/crlf.lock\r',
    ]
    let found = 0
    for (const line of lines) {
      const text = `backend: iptables\n${line}\nresync: 60\n`
      const value = configLockFile(text)
      if (value === undefined) continue
      found++
      const parsed = parseYaml(text, 'config') as Record<string, unknown>
      expect(value, line).to.equal(parsed['lock-file'])
    }
    expect(found).to.equal(7)
  })
})

describe('the key of a command line', () => {
  it('tells apart the arguments, the directory they are relative to, and smartnat’s environment variables, and nothing else', () => {
    const key = readAheadKey(['status', '-f', 'm/'], '/srv', {HOME: '/root', SMARTNAT_BACKEND: 'nftables'})
    expect(readAheadKey(['status', '-f', 'm/'], '/srv', {HOME: '/home/x', SMARTNAT_BACKEND: 'nftables'})).to.equal(key)
    expect(readAheadKey(['status', '-f', 'm/'], '/srv', {SMARTNAT_BACKEND: 'iptables'})).to.not.equal(key)
    expect(readAheadKey(['status', '-f', 'm/'], '/etc', {SMARTNAT_BACKEND: 'nftables'})).to.not.equal(key)
    expect(readAheadKey(['status', '-f', 'n/'], '/srv', {SMARTNAT_BACKEND: 'nftables'})).to.not.equal(key)
  })
})
