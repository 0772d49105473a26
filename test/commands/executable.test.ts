/**
 * The single executable (`npm run build:sea`, dist-sea/smartnat-linux-ARCH) against the npm build
 * (bin/run.cjs) it is made from: the same command lines give the same stdout, stderr and exit code,
 * byte for byte — the version, every help, dry-run syncs of the examples, the JSON of a status that
 * cannot reach a cluster, and usage errors.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, mkdtempSync, readdirSync, rmSync} from 'node:fs'
import {arch, tmpdir} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {expect} from 'chai'

import {requireOrSkip} from '../support/requirements.js'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))
const EXECUTABLE = join(ROOT, 'dist-sea', `smartnat-linux-${arch()}`)
const COMMAND_IDS = readdirSync(join(ROOT, 'src', 'commands')).filter((file) => file.endsWith('.ts')).map((file) => file.replace(/\.ts$/, ''))
const EXAMPLES = join(ROOT, 'examples')
const ASSUME = ['--assume-addresses', '198.18.0.10,198.18.0.11,198.18.0.12']

interface Outcome {
  status: number | null
  stdout: string
  stderr: string
}

describe('the single executable', function () {
  this.timeout(120_000)
  let home: string

  before(function () {
    requireOrSkip(this, existsSync(EXECUTABLE) ? undefined : `the single executable test needs ${EXECUTABLE} (npm run build && npm run build:sea)`)
    requireOrSkip(this, existsSync(join(ROOT, 'dist', 'cli', 'main.js')) ? undefined : 'the single executable test needs `npm run build` first')
    // No kubeconfig anywhere: status fails the same way on any machine.
    home = mkdtempSync(join(tmpdir(), 'smartnat-sea-home-'))
  })

  after(() => {
    if (home) rmSync(home, {recursive: true, force: true})
  })

  function cliEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', HOME: home, ...extra}
    for (const name of ['NODE_ENV', 'DEBUG', 'OCLIF_COLUMNS', 'KUBECONFIG', 'KUBERNETES_SERVICE_HOST', 'NODE_OPTIONS']) delete env[name]
    for (const [name, value] of Object.entries(extra)) if (value === undefined) delete env[name]
    return env
  }

  function run(command: string[], args: string[], env: NodeJS.ProcessEnv): Outcome {
    const [file, ...before] = command
    const {status, stdout, stderr} = spawnSync(file!, [...before, ...args], {encoding: 'utf8', env, cwd: ROOT, timeout: 60_000})
    return {status, stdout, stderr}
  }

  /** Runs ARGS with both and expects the same outcome; returns it. */
  function same(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Outcome {
    const env = cliEnv(extraEnv)
    const npm = run([process.execPath, join(ROOT, 'bin', 'run.cjs')], args, env)
    const executable = run([EXECUTABLE], args, env)
    expect(executable, `smartnat ${args.join(' ')}`).to.deep.equal(npm)
    return npm
  }

  it('prints the version and every help as the npm build does', () => {
    expect(same(['--version']).stdout).to.match(/^smartnat\/\d+\.\d+\.\d+ linux-/)
    for (const args of [['--help'], [], ...COMMAND_IDS.map((id) => [id, '--help']), ['autocomplete', '--help']]) same(args)
    // Colours (CI's or a forced one) make oclif render the help rather than print the built one.
    expect(same(['sync', '--help'], {FORCE_COLOR: '1', NO_COLOR: undefined}).stdout).to.contain('\u001B[')
    // A command of the autocomplete plugin, run by oclif from the manifest built in.
    expect(same(['autocomplete', 'script', 'bash']).status).to.equal(0)
  })

  it('prints the same dry-run sync of the examples, as text and as JSON', () => {
    const text = same(['sync', '--dry-run', '--from-file', EXAMPLES, ...ASSUME])
    expect(text.status).to.equal(0)
    expect(text.stdout).to.contain('# iptables-restore --noflush --wait')
    for (const file of readdirSync(EXAMPLES)) same(['sync', '--dry-run', '--from-file', join(EXAMPLES, file), ...ASSUME, '--backend', 'nftables'])
    expect(JSON.parse(same(['sync', '--dry-run', '--json', '--from-file', EXAMPLES, ...ASSUME]).stdout)).to.be.an('object')
  })

  it("prints an error's stack under DEBUG with the frames named through the source map it carries", () => {
    const {stderr} = run([EXECUTABLE], ['sync', '--dry-run', '--from-file', join(home, 'missing.yaml'), ...ASSUME], {...cliEnv(), DEBUG: '*'})
    const frames = stderr.split('\n').filter((line) => /^\s+at /.test(line))
    expect(frames.some((frame) => /^\s+at async readStableManifests \(src\/lib\/source\/stable-read\.ts:\d+:\d+\)$/.test(frame)), stderr).to.equal(true)
    expect(frames.filter((frame) => frame.includes('smartnat.cjs'))).to.deep.equal([])
  })

  it('fails as the npm build does, with the same exit codes', () => {
    // The lock's directory, where status keeps the tools' versions and its reads, is the test's own, not the host's /run/smartnat.
    const status = same(['status', '--json', '--lock-file', join(home, 'smartnat.lock')])
    expect(status.status).to.not.equal(0)
    expect(status.stdout).to.contain('no Kubernetes credentials')
    expect(same(['sync', '--bogus']).status).to.equal(2)
    expect(same(['sync', '--dry-run', '--from-file', join(home, 'missing.yaml'), ...ASSUME]).status).to.not.equal(0)
    expect(same(['no-such-command']).status).to.not.equal(0)
  })
})
