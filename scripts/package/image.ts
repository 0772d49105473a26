/**
 * Builds the OCI image smartnat:VERSION without a container engine: a root filesystem of the
 * single executable and the kernel tools it drives, taken from Debian's packages (apt-get download,
 * then dpkg-deb -x: no maintainer scripts run, no package manager in the image), one layer made with
 * umoci, written as an OCI archive and a docker-archive (skopeo) in dist-release/.
 */
import {execFileSync} from 'node:child_process'
import {chmodSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {DEB_ARCH, RELEASE_DIR, executablePath, packageVersion} from './paths.js'

/** What smartnat runs (iptables, ipset, ip, conntrack, nft, sysctl, flock, setpriv) and the C++ runtime the executable links. */
// dash: the daemon starts the tools through a kept shell (src/lib/host/launcher.ts).
const TOOLS = ['iptables', 'ipset', 'conntrack', 'iproute2', 'nftables', 'procps', 'util-linux', 'libstdc++6', 'dash']
/** In the dependency closure only for maintainer scripts or as alternatives, which the image never runs. */
const NOT_NEEDED = new Set(['debconf', 'cdebconf', 'dpkg', 'install-info', 'tar', 'perl-base', 'init-system-helpers', 'libdebian-installer4', 'libnewt0.52', 'libslang2', 'libtextwrap1', 'libelogind0', 'debianutils', 'lsb-base', 'sysvinit-utils'])
// Debian's iptables picks its flavour with update-alternatives in its postinst; the image uses nf_tables, Debian's default.
const IPTABLES_FLAVOUR = 'xtables-nft-multi'
const IPTABLES_COMMANDS = ['iptables', 'iptables-save', 'iptables-restore', 'ip6tables', 'ip6tables-save', 'ip6tables-restore']

function run(command: string, args: string[], cwd?: string): string {
  return execFileSync(command, args, {cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit']})
}

/** The packages TOOLS need, dependencies included, as this machine's apt resolves them. */
function packageClosure(): string[] {
  const output = run('apt-cache', ['depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts', '--no-breaks', '--no-replaces', '--no-enhances', ...TOOLS])
  const names = new Set(output.split('\n').filter((line) => /^[a-z0-9]/.test(line)))
  return [...names].filter((name) => !NOT_NEEDED.has(name)).sort()
}

/** Moves /bin, /sbin, /lib, /lib64 under /usr and links them back, as Debian 12's merged /usr has it. */
function mergeUsr(rootfs: string): void {
  for (const dir of ['bin', 'sbin', 'lib', 'lib64']) {
    const top = join(rootfs, dir)
    const under = join(rootfs, 'usr', dir)
    mkdirSync(under, {recursive: true})
    if (existsSync(top) && !lstatSync(top).isSymbolicLink()) {
      run('cp', ['-a', '--no-clobber', `${top}/.`, under])
      rmSync(top, {recursive: true})
    }
    if (!existsSync(top)) symlinkSync(`usr/${dir}`, top)
  }
}

function buildRootfs(rootfs: string, debs: string): void {
  // As root into a directory apt's own _apt user cannot write: download without its sandbox.
  run('apt-get', ['download', '-o', 'APT::Sandbox::User=root', ...packageClosure()], debs)
  for (const deb of readdirSync(debs).filter((file) => file.endsWith('.deb'))) run('dpkg-deb', ['-x', join(debs, deb), rootfs])
  mergeUsr(rootfs)
  for (const command of IPTABLES_COMMANDS) {
    const link = join(rootfs, 'usr', 'sbin', command)
    rmSync(link, {force: true})
    symlinkSync(IPTABLES_FLAVOUR, link)
  }
  // Debian points /bin/sh at dash in dash's maintainer scripts, which do not run here.
  if (!existsSync(join(rootfs, 'usr', 'bin', 'sh'))) symlinkSync('dash', join(rootfs, 'usr', 'bin', 'sh'))
  // Documentation, translations and the packages' own metadata: nothing the tools read.
  for (const dir of ['usr/share/doc', 'usr/share/man', 'usr/share/info', 'usr/share/locale', 'usr/share/lintian', 'usr/share/bash-completion']) rmSync(join(rootfs, dir), {recursive: true, force: true})
  copyFileSync(executablePath(), join(rootfs, 'usr', 'bin', 'smartnat'))
  chmodSync(join(rootfs, 'usr', 'bin', 'smartnat'), 0o755)
  writeFileSync(join(rootfs, 'etc', 'passwd'), 'root:x:0:0:root:/root:/usr/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n')
  writeFileSync(join(rootfs, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n')
  // The runtime mounts these; /run/smartnat and /run/xtables.lock come from the host (deploy/daemonset.yaml).
  for (const dir of ['proc', 'sys', 'dev', 'run', 'tmp', 'root']) mkdirSync(join(rootfs, dir), {recursive: true})
  chmodSync(join(rootfs, 'tmp'), 0o1777)
  run('ldconfig', ['-r', rootfs])
}

/** The image's size as a registry stores it: the compressed layers and the configuration. */
function blobsBytes(layout: string): number {
  const dir = join(layout, 'blobs', 'sha256')
  return readdirSync(dir).reduce((sum, blob) => sum + statSync(join(dir, blob)).size, 0)
}

/** Builds the image; returns the paths of the OCI archive and the docker-archive, and its compressed size. */
export function buildImage(): {ociArchive: string; dockerArchive: string; compressedBytes: number} {
  const version = packageVersion()
  const work = mkdtempSync(join(tmpdir(), 'smartnat-image-'))
  try {
    const rootfs = join(work, 'rootfs')
    const debs = join(work, 'debs')
    mkdirSync(rootfs)
    mkdirSync(debs)
    buildRootfs(rootfs, debs)
    const layout = join(work, 'oci')
    const image = `${layout}:${version}`
    run('umoci', ['init', '--layout', layout])
    run('umoci', ['new', '--image', image])
    run('umoci', ['insert', '--image', image, rootfs, '/'])
    run('umoci', [
      'config', '--image', image, '--os', 'linux', '--architecture', DEB_ARCH,
      '--config.entrypoint', '/usr/bin/smartnat', '--config.cmd', 'watch',
      '--config.env', 'PATH=/usr/sbin:/usr/bin:/sbin:/bin', '--config.env', 'HOME=/root', '--config.workingdir', '/',
      '--config.label', `org.opencontainers.image.version=${version}`, '--config.label', 'org.opencontainers.image.title=smartnat',
    ])
    run('umoci', ['gc', '--layout', layout])
    mkdirSync(RELEASE_DIR, {recursive: true})
    const ociArchive = join(RELEASE_DIR, `smartnat_${version}_${DEB_ARCH}.oci.tar`)
    const dockerArchive = join(RELEASE_DIR, `smartnat_${version}_${DEB_ARCH}.docker.tar`)
    rmSync(ociArchive, {force: true})
    rmSync(dockerArchive, {force: true})
    run('skopeo', ['copy', '--quiet', `oci:${image}`, `oci-archive:${ociArchive}:smartnat:${version}`])
    run('skopeo', ['copy', '--quiet', `oci:${image}`, `docker-archive:${dockerArchive}:smartnat:${version}`])
    return {ociArchive, dockerArchive, compressedBytes: blobsBytes(layout)}
  } finally {
    rmSync(work, {recursive: true, force: true})
  }
}
