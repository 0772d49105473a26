/**
 * Runs commands inside a root filesystem (a debootstrapped Debian, an unpacked image) as a container
 * would see it: chroot, with /proc, /sys and /dev mounted in a mount namespace of the command's own,
 * so that nothing stays mounted when it ends. In a network namespace of the lab when one is named.
 */
import {execa, type Result} from 'execa'

// Mounts for the chroot only: ip netns exec and unshare --mount make them private to the command.
const MOUNTS = 'mount -t proc proc "$0/proc" && mount -t sysfs sysfs "$0/sys" && mount --rbind /dev "$0/dev"'
// As deploy/daemonset.yaml runs the image: the root read-only, /run/smartnat (the host's lock directory)
// and /tmp (a memory-backed emptyDir) the only places written, no capability but NET_ADMIN and NET_RAW (setpriv from the root's util-linux).
const READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && mount -t tmpfs tmpfs "$0/run" && mkdir "$0/run/smartnat" && mount -t tmpfs tmpfs "$0/tmp"'
const DAEMONSET_CAPABILITIES = ['setpriv', '--bounding-set', '-all,+net_admin,+net_raw', '--inh-caps', '-all', '--no-new-privs', '--']

export interface ChrootOptions {
  /** A network namespace (`ip netns exec`); otherwise the machine's, for apt-get and dpkg only. */
  netns?: string
  env?: Record<string, string>
  /** Killed after this long (default 120 s). */
  timeoutMs?: number
  /** Run as deploy/daemonset.yaml runs the image: read-only root, writable /run/smartnat, NET_ADMIN and NET_RAW only. */
  asDaemonSet?: boolean
}

/** Runs COMMAND ARGS inside `root`; resolves with its outcome whatever its exit code. */
export function inChroot(root: string, command: string, args: string[], options: ChrootOptions = {}): Promise<Result> {
  const mounts = options.asDaemonSet ? `${READ_ONLY} && ${MOUNTS}` : MOUNTS
  const argv = options.asDaemonSet ? [...DAEMONSET_CAPABILITIES, command, ...args] : [command, ...args]
  const enter = ['sh', '-c', `${mounts} && exec chroot "$0" "$@"`, root, ...argv]
  const [file, ...rest] = options.netns ? ['ip', 'netns', 'exec', options.netns, ...enter] : ['unshare', '--mount', '--propagation', 'private', ...enter]
  const env = {PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: '/root', LANG: 'C.UTF-8', NO_COLOR: '1', DEBIAN_FRONTEND: 'noninteractive', ...options.env}
  return execa(file!, rest, {env, extendEnv: false, reject: false, timeout: options.timeoutMs ?? 120_000, stdin: 'ignore'})
}

/** inChroot, throwing with the command's stderr unless it exits 0; resolves with its stdout. */
export async function inChrootOk(root: string, command: string, args: string[], options: ChrootOptions = {}): Promise<string> {
  const result = await inChroot(root, command, args, options)
  if (result.exitCode !== 0) throw new Error(`${command} ${args.join(' ')} in ${root} exited with ${result.exitCode}:\n${result.stdout}\n${result.stderr}`)
  return String(result.stdout)
}
