/** Kernel settings smartnat depends on: IPv4 forwarding and loose reverse-path filtering on external interfaces. */
import type {Runner} from './runner.js'

/** rp_filter value for loose mode: accept a packet if its source is reachable through any interface. */
const RP_FILTER_LOOSE = 2

/** Reads one sysctl through the runner, so it reads the namespace the runner runs in. */
export async function readSysctl(runner: Runner, key: string): Promise<string> {
  const [value = ''] = await readSysctls(runner, [key])
  return value
}

/** Reads several single-line sysctls with one process, in the order given. */
export async function readSysctls(runner: Runner, keys: readonly string[]): Promise<string[]> {
  const {stdout} = await runner.run('sysctl', ['-n', ...keys])
  const values = stdout.split('\n').slice(0, keys.length)
  return keys.map((_, i) => (values[i] ?? '').trim())
}

/**
 * Reads several single-line sysctls with one process, null for each that cannot be read: when the
 * one process fails (a key missing, not permitted), each key is read alone to tell which.
 */
export async function readSysctlsOrNull(runner: Runner, keys: readonly string[]): Promise<(string | null)[]> {
  if (keys.length === 0) return []
  try {
    return await readSysctls(runner, keys)
  } catch {
    if (keys.length === 1) return [null]
    return Promise.all(keys.map(async (key) => (await readSysctlsOrNull(runner, [key]))[0]!))
  }
}

/** Writes sysctls through the runner, all with one process. */
export async function writeSysctls(runner: Runner, values: readonly [key: string, value: string][]): Promise<void> {
  if (values.length > 0) await runner.run('sysctl', ['-w', ...values.map(([key, value]) => `${key}=${value}`)])
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
  // One process reads them all, one writes: a watch pass does this every time.
  const [allText = '', ...ownTexts] = await readSysctls(runner, ['all', ...interfaces].map(rpFilterKey))
  const all = parseRpFilter('all', allText)
  const changes: RpFilterChange[] = []
  interfaces.forEach((name, i) => {
    const own = parseRpFilter(name, ownTexts[i] ?? '')
    if (Math.max(all, own) === 1) changes.push({interface: name, from: own, to: RP_FILTER_LOOSE})
  })
  await writeSysctls(
    runner,
    changes.map((change) => [rpFilterKey(change.interface), String(RP_FILTER_LOOSE)]),
  )
  return changes
}

function parseRpFilter(interfaceName: string, text: string): number {
  if (!/^[0-2]$/.test(text)) throw new Error(`rp_filter of ${interfaceName} is "${text}", expected 0, 1 or 2`)
  return Number(text)
}
