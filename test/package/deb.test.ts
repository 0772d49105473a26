/**
 * The .deb `npm run package` wrote (dist-release/smartnat_VERSION_ARCH.deb), installed with apt-get
 * into a fresh Debian 12 root made by debootstrap (chroot): smartnat runs, the unit passes
 * `systemd-analyze verify` and is neither enabled nor started, the settings are conffiles, and a
 * purge leaves the root's files as they were before the install — and the rules a sync programmed
 * in the lab's host namespace where they were.
 */
import {execFileSync} from 'node:child_process'
import {copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {expect} from 'chai'

import {DEB_ARCH, RELEASE_DIR, packageVersion} from '../../scripts/package/paths.js'
import {createLab, requireLab, type Lab} from '../support/lab.js'
import {requireNeeds, requireOrSkip} from '../support/requirements.js'
import {inChroot, inChrootOk} from './chroot.js'

const VERSION = packageVersion()
const DEB = join(RELEASE_DIR, `smartnat_${VERSION}_${DEB_ARCH}.deb`)
const MIRROR = process.env.SMARTNAT_DEBIAN_MIRROR ?? 'http://deb.debian.org/debian'
// What the package depends on and what systemd-analyze needs, installed before the snapshot so that it compares smartnat's files alone.
const PREREQUISITES = ['iptables', 'ipset', 'conntrack', 'iproute2', 'procps', 'nftables', 'systemd']
// Bookkeeping that installing and purging rightly change: dpkg's and apt's state, logs, caches.
const NOT_COMPARED = ['./proc', './sys', './dev', './run', './tmp', './var/lib/dpkg', './var/lib/apt', './var/cache', './var/log', './var/lib/systemd']

describe('the .deb in a fresh Debian 12', function () {
  this.timeout(1_800_000)
  let root: string
  let lab: Lab | undefined

  /** Every path under the root with its type and mode, except NOT_COMPARED. */
  function snapshot(): string[] {
    const prune = NOT_COMPARED.flatMap((path) => ['-path', path, '-o']).slice(0, -1)
    const listing = execFileSync('find', ['.', '(', ...prune, ')', '-prune', '-o', '-printf', '%p %y %m\n'], {cwd: root, encoding: 'utf8', maxBuffer: 64 << 20})
    return listing.split('\n').filter(Boolean).sort()
  }

  before(async function () {
    requireLab(this)
    requireNeeds(this, 'the .deb test', {tools: ['debootstrap', 'chroot', 'unshare', 'systemd-analyze']})
    requireOrSkip(this, existsSync(DEB) ? undefined : `the .deb test needs ${DEB} (npm run package)`)
    root = mkdtempSync(join(tmpdir(), 'smartnat-debian-'))
    execFileSync('debootstrap', ['--variant=minbase', 'bookworm', root, MIRROR], {stdio: ['ignore', 'ignore', 'inherit']})
    copyFileSync('/etc/resolv.conf', join(root, 'etc', 'resolv.conf'))
    await inChrootOk(root, 'apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...PREREQUISITES], {timeoutMs: 900_000})
    lab = await createLab()
  })

  after(async () => {
    await lab?.destroy()
    if (root) rmSync(root, {recursive: true, force: true})
  })

  it('installs, runs, verifies its unit, and purges to the root it found, leaving the kernel rules alone', async () => {
    const before = snapshot()
    copyFileSync(DEB, join(root, 'tmp', 'smartnat.deb'))
    await inChrootOk(root, 'apt-get', ['install', '-y', '-qq', '/tmp/smartnat.deb'])
    rmSync(join(root, 'tmp', 'smartnat.deb'))

    expect(await inChrootOk(root, 'smartnat', ['--version'])).to.match(new RegExp(`^smartnat/${VERSION.replaceAll('.', '\\.')} linux-`))
    const dryRun = await inChrootOk(root, 'smartnat', ['sync', '--dry-run', '--from-file', '/usr/share/smartnat/examples', '--assume-addresses', '198.18.0.10,198.18.0.11,198.18.0.12'])
    expect(dryRun).to.match(/^default\/mapping-echo-service\s+configured on 198\.18\.0\.10$/m)
    expect(dryRun).to.contain('# iptables-restore --noflush --wait')
    expect(readFileSync(join(root, 'usr/share/doc/smartnat/help.txt'), 'utf8')).to.contain('$ smartnat sync --help')

    execFileSync('systemd-analyze', ['verify', `--root=${root}`, 'smartnat.service'], {stdio: ['ignore', 'ignore', 'inherit']})
    expect(existsSync(join(root, 'etc/systemd/system/multi-user.target.wants/smartnat.service')), 'enabled').to.equal(false)
    const conffiles = await inChrootOk(root, 'dpkg-query', ['-W', '-f=${Conffiles}', 'smartnat'])
    expect(conffiles).to.contain('/etc/smartnat/smartnat.env').and.to.contain('/etc/smartnat/config.yaml')

    // A real sync in the lab's host namespace, then the purge run there too: it must not take the rules away.
    const sync = await inChroot(root, 'smartnat', ['sync', '--from-file', '/usr/share/smartnat/examples', '--lock-file', '/tmp/smartnat.lock'], {netns: lab!.ns('host')})
    expect(sync.exitCode, String(sync.stderr)).to.equal(0)
    await inChrootOk(root, 'dpkg', ['--purge', 'smartnat'], {netns: lab!.ns('host')})
    expect((await lab!.exec('host', 'iptables-save', ['-t', 'nat'])).stdout).to.contain(':SNM-PREROUTING')

    rmSync(join(root, 'tmp', 'smartnat.lock'), {force: true})
    expect(snapshot()).to.deep.equal(before)
  })
})
