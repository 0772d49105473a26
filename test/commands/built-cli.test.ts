/**
 * The CLI as `npm run build` leaves it and the package ships it (bin/run.cjs, the bundle in dist/,
 * oclif.manifest.json, dist/help.json): the manifest and the rendered help match the commands in
 * src/, and a start loads only what its path needs, counted in modules, not timed.
 */
import {spawnSync} from 'node:child_process'
import {chmodSync, closeSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {delimiter, join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'

import {writeToolStandIns} from '../../scripts/code-cache.js'
import {sourceConfig} from '../../bin/source-config.js'
import {requireOrSkip} from '../support/requirements.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const MODULE_LOG = fileURLToPath(new URL('../support/module-log.mjs', import.meta.url))
const COMMAND_IDS = readdirSync(join(ROOT, 'src', 'commands')).filter((file) => file.endsWith('.ts')).map((file) => file.replace(/\.ts$/, ''))
const DRY_RUN = ['sync', '--dry-run', '--from-file', join(ROOT, 'examples', 'echo-service.yaml'), '--assume-addresses', '198.18.0.10']

// Neither a terminal nor CI's colours: output as a pipe gets it, and oclif's rendering is comparable byte for byte.
function cliEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1'}
  for (const name of ['NODE_ENV', 'DEBUG', 'OCLIF_COLUMNS']) delete env[name]
  return env
}

function run(entry: 'run' | 'dev', args: string[], nodeOptions: string[] = [], env: NodeJS.ProcessEnv = cliEnv()): string {
  const result = spawnSync(process.execPath, [...nodeOptions, join(ROOT, 'bin', entry === 'run' ? 'run.cjs' : 'dev.js'), ...args], {encoding: 'utf8', env, timeout: 60_000})
  if (result.status !== 0) throw new Error(`bin/${entry} ${args.join(' ')} exited with ${result.status}:\n${result.stderr}`)
  return result.stdout
}

describe('the built CLI', function () {
  this.timeout(300_000)
  let logDir: string

  before(function () {
    requireOrSkip(this, existsSync(join(ROOT, 'dist', 'cli', 'start.cjs')) ? undefined : 'the built CLI needs `npm run build` first')
    logDir = mkdtempSync(join(tmpdir(), 'smartnat-modules-'))
  })

  after(() => {
    if (logDir) rmSync(logDir, {recursive: true, force: true})
  })

  /** The files a run of bin/run.cjs ARGS loaded as modules, relative to the package root. */
  function modulesLoaded(args: string[], env: NodeJS.ProcessEnv = {}): string[] {
    const log = join(logDir, `${args[0]}-${args.length}-${Object.keys(env).length}.json`)
    run('run', args, ['--import', MODULE_LOG], {...cliEnv(), ...env, SMARTNAT_TEST_MODULE_LOG: log})
    return (JSON.parse(readFileSync(log, 'utf8')) as string[]).map((url) => fileURLToPath(url).slice(ROOT.length))
  }

  it('ships a manifest that describes every command of src/commands as the sources do', async () => {
    const manifest = JSON.parse(readFileSync(join(ROOT, 'oclif.manifest.json'), 'utf8')) as {commands: Record<string, {relativePath: string[]}>}
    expect(Object.keys(manifest.commands).sort()).to.deep.equal([...COMMAND_IDS].sort())
    const config = await sourceConfig()
    for (const id of COMMAND_IDS) {
      const {relativePath, ...fromSources} = JSON.parse(JSON.stringify(config.findCommand(id, {must: true}))) as {relativePath: string[]}
      const {relativePath: built, ...fromManifest} = manifest.commands[id]!
      expect(fromManifest, `oclif.manifest.json's ${id} (flags, args, help)`).to.deep.equal(fromSources)
      expect(built).to.deep.equal(['dist', 'commands', `${id}.js`])
      expect(relativePath).to.deep.equal(['src', 'commands', `${id}.ts`])
      expect(existsSync(join(ROOT, ...built)), built.join('/')).to.equal(true)
    }
  })

  it('prints the version and every help as oclif does from the sources', () => {
    for (const args of [['--version'], ['--help'], [], ...COMMAND_IDS.map((id) => [id, '--help']), ['autocomplete', '--help']]) {
      expect(run('run', args), `smartnat ${args.join(' ')}`).to.equal(run('dev', args))
    }
  })

  it('answers --version and COMMAND --help from the build without loading oclif', () => {
    for (const args of [['--version'], ['--help'], ['sync', '--help'], ['status', '--help']]) {
      // bin/run.cjs and the entry, both CommonJS: no ES module, nothing of oclif, nothing from node_modules.
      expect(modulesLoaded(args), `smartnat ${args.join(' ')}`).to.have.members(['bin/run.cjs', 'dist/cli/start.cjs'])
    }
  })

  it('runs a command through the CLI script, compiled from the code cache the build made for this Node.js', () => {
    // bin/run.cjs and the entry: no ES module of the bundle is loaded, the script runs the command.
    expect(modulesLoaded(DRY_RUN)).to.have.members(['bin/run.cjs', 'dist/cli/start.cjs'])
    // Asked of a fresh node, as a start asks it: V8 rejects a cache made under other flags, and this
    // process's flags are not a start's (tests that run commands in-process set the heap's).
    const script = join(ROOT, 'dist', 'cli', 'smartnat.cjs')
    const check = `const {Script} = require('node:vm'); const {readFileSync} = require('node:fs')
const compiled = new Script(readFileSync(${JSON.stringify(script)}, 'utf8'), {filename: ${JSON.stringify(script)}, cachedData: readFileSync(${JSON.stringify(join(ROOT, 'dist', 'cli', 'smartnat.cache'))})})
process.stdout.write(String(compiled.cachedDataRejected))`
    const result = spawnSync(process.execPath, ['-e', check], {encoding: 'utf8', env: {...process.env, NODE_OPTIONS: ''}})
    expect(result.stderr).to.equal('')
    expect(result.stdout, 'cachedDataRejected').to.equal('false')
  })

  it('runs a command without collating text by the locale (the first localeCompare loads ICU’s collation: 11-15 ms of a start)', () => {
    const log = join(logDir, 'collations.txt')
    // Counts the calls, in the CLI's process, of what collates by the locale; writes the count at exit.
    const counter = `import {writeFileSync} from 'node:fs'
let calls = 0
const {localeCompare} = String.prototype
String.prototype.localeCompare = function (...args) { calls++; return localeCompare.apply(this, args) }
const Collator = Intl.Collator
Intl.Collator = function (...args) { calls++; return new Collator(...args) }
process.on('exit', () => writeFileSync(${JSON.stringify(log)}, String(calls)))`
    run('run', DRY_RUN, ['--import', `data:text/javascript,${encodeURIComponent(counter)}`])
    expect(readFileSync(log, 'utf8')).to.equal('0')
  })

  it("runs a command without looking for oclif's theme file (smartnat has no theme; the read cost a dry-run sync about 3 ms)", () => {
    const log = join(logDir, 'theme-reads.txt')
    // Counts the reads, in the CLI's process, of a file named theme.json; writes the count at exit.
    const counter = `import {writeFileSync} from 'node:fs'
import fs from 'node:fs/promises'
let reads = 0
const {readFile} = fs
fs.readFile = function (path, ...rest) { if (String(path).endsWith('theme.json')) reads++; return readFile.call(this, path, ...rest) }
process.on('exit', () => writeFileSync(${JSON.stringify(log)}, String(reads)))`
    run('run', DRY_RUN, ['--import', `data:text/javascript,${encodeURIComponent(counter)}`])
    expect(readFileSync(log, 'utf8')).to.equal('0')
  })

  it('runs a status of a host without Mappings without loading node:crypto (it hashes nothing; loading it costs a start about 2.5 ms)', () => {
    const tools = join(logDir, 'tools')
    writeToolStandIns(tools)
    mkdirSync(join(logDir, 'empty'), {recursive: true})
    const log = join(logDir, 'status-builtins.json')
    // Node's own modules the process loaded, written at exit.
    const recorder = `import {writeFileSync} from 'node:fs'
process.on('exit', () => writeFileSync(${JSON.stringify(log)}, JSON.stringify(process.moduleLoadList)))`
    const env = {...cliEnv(), PATH: [tools, process.env.PATH].join(delimiter)}
    const args = ['--import', `data:text/javascript,${encodeURIComponent(recorder)}`, join(ROOT, 'bin', 'run.cjs'), 'status', '--from-file', join(logDir, 'empty'), '--lock-file', join(logDir, 'status.lock')]
    const result = spawnSync(process.execPath, args, {encoding: 'utf8', env, timeout: 60_000})
    // 4: the stand-ins' forwarding is off, as a new network namespace's.
    expect(result.status, result.stderr).to.equal(4)
    const builtins = JSON.parse(readFileSync(log, 'utf8')) as string[]
    expect(builtins).to.include('NativeModule child_process')
    expect(builtins.filter((name) => /^NativeModule (crypto|internal\/crypto\/)/.test(name))).to.deep.equal([])
  })

  it("starts status's reads with the process, as the same command line ran them last time, and runs them once", () => {
    const tools = join(logDir, 'ahead-tools')
    writeToolStandIns(tools)
    const shells = join(logDir, 'shells.log')
    // Every shell smartnat starts by name, logged: the reads' shell is `sh -c SCRIPT`.
    writeFileSync(join(tools, 'sh'), `#!/bin/sh\necho "$2" | head -c 60 >> ${shells}; echo >> ${shells}\nexec /bin/sh "$@"\n`)
    chmodSync(join(tools, 'sh'), 0o755)
    mkdirSync(join(logDir, 'empty'), {recursive: true})
    const runDir = join(logDir, 'ahead-run')
    const slotLog = join(logDir, 'read-ahead-slot.json')
    // At exit, the read the entry started ahead (its script) and whether a read of the command looked for it.
    const recorder = `import {writeFileSync} from 'node:fs'
process.on('exit', () => { const slot = globalThis[Symbol.for('smartnat.read-ahead')]; writeFileSync(${JSON.stringify(slotLog)}, JSON.stringify({ahead: slot?.ahead?.spec.args.at(-1) ?? null, taken: slot?.taken ?? null})) })`
    const status = () => {
      const args = ['--import', `data:text/javascript,${encodeURIComponent(recorder)}`, join(ROOT, 'bin', 'run.cjs'), 'status', '--from-file', join(logDir, 'empty'), '--lock-file', join(runDir, 'smartnat.lock')]
      const result = spawnSync(process.execPath, args, {encoding: 'utf8', env: {...cliEnv(), PATH: [tools, process.env.PATH].join(delimiter)}, timeout: 60_000})
      expect(result.status, result.stderr).to.equal(4)
      return {output: result.stdout, slot: JSON.parse(readFileSync(slotLog, 'utf8')) as {ahead: string | null; taken: boolean | null}}
    }
    const shellLines = () => readFileSync(shells, 'utf8').split('\n').filter(Boolean)
    // Nothing kept yet: nothing started ahead, and the read the command asked for is kept.
    expect(status().slot).to.deep.equal({ahead: null, taken: true})
    // The first run also asked the tools their versions, which it keeps beside the lock; the second reads the host alone.
    const {output} = status()
    const kept = join(runDir, 'read-ahead.json')
    const {entries} = JSON.parse(readFileSync(kept, 'utf8')) as {entries: {file: string; args: string[]}[]}
    // Kept: the shell the second run started (the log holds the start of its script).
    expect(entries.map((e) => [e.file, e.args[0], e.args[1]!.startsWith(shellLines().at(-1)!)])).to.deep.equal([['sh', '-c', true]])
    // Started by the entry and taken over: one shell more, and the same answer.
    const shellsBefore = shellLines().length
    expect(status()).to.deep.equal({output, slot: {ahead: entries[0]!.args[1], taken: true}})
    expect(shellLines()).to.have.length(shellsBefore + 1)
    // A kept read the command does not ask for any more is started, then ended, and the command's own runs and replaces it.
    writeFileSync(kept, JSON.stringify({entries: [{...entries[0]!, args: ['-c', 'echo stale-read']}]}))
    expect(status()).to.deep.equal({output, slot: {ahead: 'echo stale-read', taken: true}})
    expect(shellLines().at(-1)).to.equal(shellLines()[shellsBefore])
    expect(JSON.parse(readFileSync(kept, 'utf8'))).to.deep.equal({entries})
  })

  it('keeps and starts the reads of status beside the lock its config file names', () => {
    const tools = join(logDir, 'config-tools')
    writeToolStandIns(tools)
    mkdirSync(join(logDir, 'empty'), {recursive: true})
    const runDir = join(logDir, 'config-run')
    const config = join(logDir, 'config.yaml')
    writeFileSync(config, `backend: iptables\nlock-file: '${join(runDir, 'smartnat.lock')}' # not the default\n`)
    const slotLog = join(logDir, 'config-slot.json')
    const recorder = `import {writeFileSync} from 'node:fs'
process.on('exit', () => { const slot = globalThis[Symbol.for('smartnat.read-ahead')]; writeFileSync(${JSON.stringify(slotLog)}, JSON.stringify({path: slot?.path ?? null, ahead: slot?.ahead !== undefined, taken: slot?.taken ?? null})) })`
    const status = () => {
      const args = ['--import', `data:text/javascript,${encodeURIComponent(recorder)}`, join(ROOT, 'bin', 'run.cjs'), 'status', '--from-file', join(logDir, 'empty'), '--config', config]
      const result = spawnSync(process.execPath, args, {encoding: 'utf8', env: {...cliEnv(), PATH: [tools, process.env.PATH].join(delimiter)}, timeout: 60_000})
      expect(result.status, result.stderr).to.equal(4)
      return JSON.parse(readFileSync(slotLog, 'utf8')) as {path: string | null; ahead: boolean; taken: boolean | null}
    }
    const kept = join(runDir, 'read-ahead.json')
    expect(status()).to.deep.equal({path: kept, ahead: false, taken: true})
    status()
    expect(status()).to.deep.equal({path: kept, ahead: true, taken: true})
    expect(existsSync(kept)).to.equal(true)
  })

  it("formats a stack trace through the script's source map: the frames name the sources' files, lines and functions, wherever the package is", () => {
    // The package as installed elsewhere: its script was compiled from a code cache made here, under this path.
    const installed = join(logDir, 'installed')
    mkdirSync(installed)
    for (const entry of ['bin', 'dist', 'package.json']) cpSync(join(ROOT, entry), join(installed, entry), {recursive: true})
    symlinkSync(join(ROOT, 'node_modules'), join(installed, 'node_modules'))
    for (const root of [ROOT, installed]) {
      const log = join(logDir, 'stack.txt')
      // The manifest's read fails inside the script; the stack is formatted at exit, as a crash's would be.
      const failingRead = `import fs from 'node:fs'
const readFile = fs.readFile
fs.readFile = (path, ...rest) => { if (String(path).endsWith('echo-service.yaml')) { const error = new Error('unreadable'); globalThis.failedRead = error; throw error } return readFile(path, ...rest) }
process.on('exit', () => fs.writeFileSync(${JSON.stringify(log)}, globalThis.failedRead.stack))`
      const result = spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(failingRead)}`, join(root, 'bin', 'run.cjs'), ...DRY_RUN], {encoding: 'utf8', env: cliEnv(), timeout: 60_000})
      expect(result.status).to.not.equal(0)
      const frames = readFileSync(log, 'utf8').split('\n').slice(1)
      expect(frames.some((frame) => frame.startsWith(`    at readOnce (${join(root, 'src', 'lib', 'source', 'stable-read.ts')}:`)), frames.join('\n')).to.equal(true)
      expect(frames.some((frame) => frame.startsWith(`    at async readManifests (${join(root, 'src', 'lib', 'source', 'file.ts')}:`))).to.equal(true)
      expect(frames.filter((frame) => frame.includes('smartnat.cjs'))).to.deep.equal([])
    }
  })

  it('prints a dry-run sync to a file without node:crypto, node:tty, node:net and node:fs/promises, and colours it on a terminal only', () => {
    const log = join(logDir, 'dry-run-builtins.json')
    const recorder = `import {writeFileSync} from 'node:fs'
process.on('exit', () => writeFileSync(${JSON.stringify(log)}, JSON.stringify(process.moduleLoadList)))`
    const output = join(logDir, 'dry-run.txt')
    // stdout and stderr to a file, as cron's redirections make them: chalk asks the streams, not node:tty.
    const fd = openSync(output, 'w')
    const args = ['--import', `data:text/javascript,${encodeURIComponent(recorder)}`, join(ROOT, 'bin', 'run.cjs'), ...DRY_RUN]
    const {NO_COLOR: _, ...env} = cliEnv()
    const result = spawnSync(process.execPath, args, {env, stdio: ['ignore', fd, fd], timeout: 60_000})
    closeSync(fd)
    expect(result.status).to.equal(0)
    const builtins = JSON.parse(readFileSync(log, 'utf8')) as string[]
    expect(builtins.filter((name) => /^NativeModule (tty|net|crypto|fs\/promises)$/.test(name))).to.deep.equal([])
    const plain = readFileSync(output, 'utf8')
    expect(plain).to.match(/^default\/mapping-echo-service {2}configured on 198\.18\.0\.10\n/)
    // On a terminal (script(1) gives the command one), the verdict is green.
    const command = [process.execPath, join(ROOT, 'bin', 'run.cjs'), ...DRY_RUN].map((word) => `'${word}'`).join(' ')
    // A terminal that says it has colours, outside CI (chalk colours nothing under CI, whatever the terminal).
    const terminalEnv: NodeJS.ProcessEnv = {...env, TERM: 'xterm'}
    delete terminalEnv.CI
    const terminal = spawnSync('script', ['-qec', command, '/dev/null'], {encoding: 'utf8', env: terminalEnv, timeout: 60_000})
    expect(terminal.status, terminal.stderr).to.equal(0)
    expect(terminal.stdout).to.include('mapping-echo-service  \u001B[32mconfigured\u001B[39m on 198.18.0.10')
  })

  it('gives the Kubernetes client\'s node-fetch Node\'s own URL, without whatwg-url and its IDNA table (1.5 MB of the daemon\'s heap)', () => {
    const chunks = readdirSync(join(ROOT, 'dist', 'chunks')).filter((file) => file.endsWith('.js')).map((file) => join(ROOT, 'dist', 'chunks', file))
    for (const file of [join(ROOT, 'dist', 'cli', 'kube-client.cjs'), ...chunks]) {
      const text = readFileSync(file, 'utf8')
      expect(text, file).not.to.include('node_modules/whatwg-url/')
      expect(text, file).not.to.include('node_modules/tr46/')
    }
    expect(readFileSync(join(ROOT, 'dist', 'cli', 'kube-client.cjs'), 'utf8')).to.include('node_modules/node-fetch/')
  })

  it('runs a dry-run sync from a file without the Kubernetes client, from a few bundled files (the ES modules, which DEBUG runs)', () => {
    const loaded = modulesLoaded(DRY_RUN, {DEBUG: 'smartnat-test-none'})
    expect(loaded.filter((file) => file.includes('@kubernetes/client-node'))).to.deep.equal([])
    expect(loaded.filter((file) => file.startsWith('node_modules/'))).to.deep.equal([])
    expect(loaded.filter((file) => file.startsWith('dist/commands/'))).to.deep.equal(['dist/commands/sync.js'])
    // 15 files today; 285 unbundled, 1,195 when it loaded the Kubernetes client.
    expect(loaded).to.have.length.at.most(30)
  })
})
