/**
 * Builds dist-release/smartnat_VERSION_amd64.deb from the single executable (`npm run build` and
 * `npm run build:sea` first) with dpkg-deb: /usr/bin/smartnat, the systemd unit (installed, neither
 * enabled nor started), /etc/smartnat/{smartnat.env,config.yaml} as conffiles, crds/, deploy/ and
 * examples/ under /usr/share/smartnat, and every command's --help under /usr/share/doc/smartnat.
 * Removing or purging the package never touches what smartnat programmed into the kernel.
 */
import {execFileSync} from 'node:child_process'
import {chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {dirname, join} from 'node:path'

import {DEB_ARCH, RELEASE_DIR, ROOT, executablePath, packageVersion} from './paths.js'

const UNIT = 'smartnat.service'

// The executable is Node.js: it links the C and C++ runtimes (glibc 2.28 and libstdc++ GLIBCXX_3.4.21 at least).
// smartnat runs sysctl (procps, not in a minimal Debian); flock and setpriv come with util-linux, which is essential.
const CONTROL = (version: string, installedKb: number) => `Package: smartnat
Version: ${version}
Architecture: ${DEB_ARCH}
Maintainer: smartnat maintainers <maintainers@users.noreply.r-seed-40a38fa6.example>
Installed-Size: ${installedKb}
Depends: libc6 (>= 2.28), libstdc++6 (>= 5.2), libgcc-s1, iptables, ipset, conntrack, iproute2, procps
Recommends: nftables
Section: net
Priority: optional
Description: NAT from external addresses to Kubernetes Services, declared by Mappings
 smartnat turns Kubernetes Mapping resources into NAT on a Linux edge host
 (iptables and ipset, or nftables, plus ip rule and route). One self-contained
 executable; the systemd unit is installed but neither enabled nor started:
 edit /etc/smartnat/smartnat.env, then systemctl enable --now smartnat.
`

// Stopping the service leaves its rules in place (the unit's KillSignal=SIGTERM): removing the package never flushes.
const PRERM = `#!/bin/sh
set -e
if [ "$1" = remove ] && [ -d /run/systemd/system ] && systemctl is-active --quiet ${UNIT}; then
  systemctl stop ${UNIT} || true
fi
`

const POSTINST = `#!/bin/sh
set -e
if [ "$1" = configure ] && [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
`

// dpkg removes the conffiles on purge; what an operator's systemctl enable made stays behind otherwise.
const POSTRM = `#!/bin/sh
set -e
if [ "$1" = purge ]; then
  rm -f /etc/systemd/system/multi-user.target.wants/${UNIT}
  rmdir /etc/smartnat 2>/dev/null || true
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload || true
fi
`

/** Every command's help as oclif renders it to a pipe (dist/help.json), one after the other. */
function helpText(): string {
  const {help} = JSON.parse(readFileSync(join(ROOT, 'dist', 'help.json'), 'utf8')) as {help: Record<string, string>}
  return Object.entries(help)
    .map(([id, text]) => `$ smartnat ${id ? `${id} ` : ''}--help\n\n${text}`)
    .join('\n')
}

function put(stage: string, path: string, content: string | {from: string}, mode = 0o644): void {
  const file = join(stage, path)
  mkdirSync(dirname(file), {recursive: true})
  if (typeof content === 'string') writeFileSync(file, content)
  else copyFileSync(content.from, file)
  chmodSync(file, mode)
}

function sizeKb(dir: string): number {
  let bytes = 0
  for (const entry of readdirSync(dir, {recursive: true, withFileTypes: true})) if (entry.isFile()) bytes += statSync(join(entry.parentPath, entry.name)).size
  return Math.ceil(bytes / 1024)
}

/** Builds the .deb and returns its path. */
export function buildDeb(): string {
  const version = packageVersion()
  const stage = mkdtempSync(join(tmpdir(), 'smartnat-deb-'))
  try {
    // The archive's root becomes /'s mode in dpkg's eyes: not mkdtemp's 0700.
    chmodSync(stage, 0o755)
    put(stage, 'usr/bin/smartnat', {from: executablePath()}, 0o755)
    put(stage, `lib/systemd/system/${UNIT}`, {from: join(ROOT, 'deploy', UNIT)})
    put(stage, 'etc/smartnat/smartnat.env', {from: join(ROOT, 'deploy', 'smartnat.env.example')}, 0o640)
    put(stage, 'etc/smartnat/config.yaml', {from: join(ROOT, 'deploy', 'config.yaml.example')})
    for (const dir of ['crds', 'deploy', 'examples']) cpSync(join(ROOT, dir), join(stage, 'usr/share/smartnat', dir), {recursive: true})
    put(stage, 'usr/share/doc/smartnat/help.txt', helpText())
    put(stage, 'usr/share/doc/smartnat/copyright', `Files: *\nLicense: Apache-2.0\n On Debian systems the full text is in /usr/share/common-licenses/Apache-2.0.\n`)
    const installedKb = sizeKb(stage)
    put(stage, 'DEBIAN/control', CONTROL(version, installedKb))
    put(stage, 'DEBIAN/conffiles', '/etc/smartnat/smartnat.env\n/etc/smartnat/config.yaml\n')
    put(stage, 'DEBIAN/prerm', PRERM, 0o755)
    put(stage, 'DEBIAN/postinst', POSTINST, 0o755)
    put(stage, 'DEBIAN/postrm', POSTRM, 0o755)
    mkdirSync(RELEASE_DIR, {recursive: true})
    const deb = join(RELEASE_DIR, `smartnat_${version}_${DEB_ARCH}.deb`)
    execFileSync('dpkg-deb', ['--root-owner-group', '-Zxz', '--build', stage, deb], {stdio: ['ignore', 'ignore', 'inherit']})
    return deb
  } finally {
    rmSync(stage, {recursive: true, force: true})
  }
}
