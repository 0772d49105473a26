/**
 * Runs commands inside a root filesystem (a debootstrapped Debian, an unpacked image) as a container
 * would see it: chroot, with /proc, /sys and /dev mounted in a mount namespace of the command's own,
 * so that nothing stays mounted when it ends. In a network namespace of the lab when one is named.
 */
import {execa, type Result} from 'execa'

// Mounts for the chroot only: ip netns exec and unshare --mount make them private to the command.
const ENTER = 'mount -t proc proc "$0/proc" && mount -t sysfs sysfs "$0/sys" && mount --rbind /dev "$0/dev" && exec chroot "$0" "$@"'

export interface ChrootOptions {
  /** A network namespace (`ip netns exec`); otherwise the machine's, for apt-get and dpkg only. */
  netns?: string
  env?: Record<string, string>
  /** Killed after this long (default 120 s). */
  timeoutMs?: number
}

/** Runs COMMAND ARGS inside `root`; resolves with its outcome whatever its exit code. */
export function inChroot(root: string, command: string, args: string[], options: ChrootOptions = {}): Promise<Result> {
  const enter = ['sh', '-c', ENTER, root, command, ...args]
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
