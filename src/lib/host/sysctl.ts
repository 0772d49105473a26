/** Kernel settings smartnat depends on: IPv4 forwarding and loose reverse-path filtering on external interfaces. */
import type {Runner} from './runner.js'

/** rp_filter value for loose mode: accept a packet if its source is reachable through any interface. */
const RP_FILTER_LOOSE = 2

/** Reads one sysctl through the runner, so it reads the namespace the runner runs in. */
export async function readSysctl(runner: Runner, key: string): Promise<string> {
  const {stdout} = await runner.run('sysctl', ['-n', key])
  return stdout.trim()
}

/** Writes one sysctl through the runner. */
export async function writeSysctl(runner: Runner, key: string, value: string): Promise<void> {
  await runner.run('sysctl', ['-w', `${key}=${value}`])
}

// Slash-separated keys keep interface names with dots (VLANs such as eth1.100) in one path component.
function rpFilterKey(interfaceName: string): string {
  return `net/ipv4/conf/${interfaceName}/rp_filter`
}

/** Fails with how to fix it when the host does not forward IPv4 packets. */
export async function checkIpForwarding(runner: Runner): Promise<void> {
  const value = await readSysctl(runner, 'net.ipv4.ip_forward')
  if (value !== '1') {
    throw new Error(
      `net.ipv4.ip_forward is ${value || 'empty'}: this host does not forward IPv4 packets, so DNATed traffic cannot reach the cluster; ` +
        'enable it with `sysctl -w net.ipv4.ip_forward=1` and persist it in /etc/sysctl.d/',
    )
  }
}

export interface RpFilterChange {
  interface: string
  /** The interface's own value before the change. */
  from: number
  to: number
}

/** Sets rp_filter to loose on each external interface whose effective mode is strict; returns what it changed. */
export async function relaxReversePathFilter(runner: Runner, interfaces: string[]): Promise<RpFilterChange[]> {
  // The kernel applies max(conf.all, conf.<if>): an interface at 0 is still strict when `all` is 1,
  // and writing 2 on the interface is enough to make it loose either way.
  const all = parseRpFilter('all', await readSysctl(runner, rpFilterKey('all')))
  const changes: RpFilterChange[] = []
  for (const name of interfaces) {
    const own = parseRpFilter(name, await readSysctl(runner, rpFilterKey(name)))
    if (Math.max(all, own) !== 1) continue
    await writeSysctl(runner, rpFilterKey(name), String(RP_FILTER_LOOSE))
    changes.push({interface: name, from: own, to: RP_FILTER_LOOSE})
  }
  return changes
}

function parseRpFilter(interfaceName: string, text: string): number {
  if (!/^[0-2]$/.test(text)) throw new Error(`rp_filter of ${interfaceName} is "${text}", expected 0, 1 or 2`)
  return Number(text)
}
