/**
 * The Go SmartNat controller's kernel layout, rebuilt with the very commands its helpers issue
 * (DevFactory/smartnat pkg/controller/mapping: iptables_helper.go, dnat_providers.go, syncer.go,
 * iproute_smart_nat_helper.go; DevFactory/go-tools pkg/nettools: iptables.go, ipset.go, iproute.go,
 * utils.go), with SNAT and masquerade on, for a lab host: what `flush --legacy` and `sync --migrate`
 * must find and remove.
 *
 * Differences that the kernel does not see: commands name routing tables by id, since ip inside the
 * lab reads the real /etc/iproute2/rt_tables, which no test may edit; its `<id> <name>` lines go to a
 * file of the test's own, which the commands under test are pointed at with --rt-tables; the SNAT
 * rule's `-m set --set` is spelled `--match-set` (the same match, without iptables' warning); the
 * rp_filter writes go through sysctl rather than /proc.
 */
import {createHash} from 'node:crypto'
import {appendFile} from 'node:fs/promises'
import {goTableId} from '../../src/lib/routing/legacy.js'
import type {Lab} from './lab.js'

/** One Mapping as the Go controller programmed it: on its first local address only. */
export interface GoMapping {
  namespace: string
  name: string
  address: string
  allowedSources: string[]
  ports: {protocol: 'tcp' | 'udp'; port: number; servicePort: number}[]
  clusterIP: string
  pods: string[]
}

/** One external interface: its addresses get `from` rules, its table a subnet and a default route. */
export interface GoInterface {
  name: string
  addresses: string[]
  subnet: string
  gateway: string
}

const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'

/** The Go controller's short name of a Mapping: base32 of SHA-256("namespace/name"), first 24 characters. */
export function goShortName(namespace: string, name: string): string {
  const bytes = createHash('sha256').update(`${namespace}/${name}`).digest()
  let bits = 0
  let value = 0
  let out = ''
  for (const byte of bytes) {
    value = (value << 8) | byte
    bits += 8
    while (bits >= 5) {
      out += BASE32[(value >>> (bits - 5)) & 31]
      bits -= 5
    }
  }
  return out.slice(0, 24)
}

/** How its helper handed a comment to iptables: wrapped in a pair of literal double quotes. */
const quoted = (comment: string) => `'"${comment}"'`

function initCommands(): string[] {
  const chainWithJump = (table: string, chain: string, builtin: string) => [
    `iptables -w 10 -t ${table} -N ${chain}`,
    `iptables -w 10 -t ${table} -A ${builtin} -m comment --comment ${quoted('for SNM')} -j ${chain}`,
  ]
  return [
    ...chainWithJump('mangle', 'SNM-PREROUTING', 'PREROUTING'),
    ...chainWithJump('nat', 'SNM-PREROUTING', 'PREROUTING'),
    ...chainWithJump('nat', 'SNM-POSTROUTING-SNAT', 'POSTROUTING'),
    ...chainWithJump('nat', 'SNM-POSTROUTING-MASQ', 'POSTROUTING'),
    `iptables -w 10 -t nat -I SNM-POSTROUTING-MASQ -m mark --mark 0x00100000/0x00100000 -m comment --comment ${quoted('masquerade traffic marked in PREROUTING rules as destined for services')} -j MASQUERADE`,
  ]
}

function routingCommands(iface: GoInterface, index: number): string[] {
  const table = goTableId(iface.name)
  const mark = `0x${(0x800 + index).toString(16)}`
  return [
    ...iface.addresses.map((address) => `ip rule add from ${address} lookup ${table}`),
    `sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.${iface.name}.rp_filter=0`,
    `ip rule add fwmark ${mark} lookup ${table}`,
    `ip route add ${iface.subnet} dev ${iface.name} scope link tab ${table}`,
    `ip route add default via ${iface.gateway} dev ${iface.name} tab ${table}`,
  ]
}

function mappingCommands(m: GoMapping, markOfAddress: number): string[] {
  const short = goShortName(m.namespace, m.name)
  const full = `${m.namespace}/${m.name}`
  const mark = `0x${markOfAddress.toString(16)}`
  const sources = m.allowedSources.flatMap((s) => (s.endsWith('/0') ? ['0.0.0.0/1', '128.0.0.0/1'] : [s]))
  const netPorts = sources.flatMap((net) => ['tcp', 'udp'].flatMap((protocol) => m.ports.filter((p) => p.protocol === protocol).map((p) => `${net},${protocol}:${p.port}`)))
  return [
    `ipset create ${short} hash:ip comment counters -exist`,
    ...m.pods.map((ip) => `ipset add ${short} ${ip} -exist`),
    `iptables -w 10 -t mangle -A SNM-PREROUTING -m set --match-set ${short} src -m comment --comment ${quoted(`for Maping ${full} [${short}] mark ${mark}`)} -j MARK --set-xmark ${mark}/${mark}`,
    `iptables -w 10 -t nat -N MAP-${short}`,
    `ipset create DNAT-${short} hash:net,port comment counters -exist`,
    ...netPorts.map((entry) => `ipset add DNAT-${short} ${entry} -exist`),
    `iptables -w 10 -t nat -A SNM-PREROUTING -d ${m.address}/32 -m set --match-set DNAT-${short} src,dst -m comment --comment ${quoted(`for mapping ${full}`)} -j MAP-${short}`,
    `iptables -w 10 -t nat -I MAP-${short} -m comment --comment ${quoted('mark for masquerade in SNM-POSTROUTING-MASQ')} -j MARK --or-mark 0x00100000`,
    ...m.ports.map(
      (p) =>
        `iptables -w 10 -t nat -A MAP-${short} -p ${p.protocol} --dport ${p.port} -m comment --comment ${quoted(`for mapping ${full} [${p.protocol}:${p.port}:${p.servicePort}]`)} -j DNAT --to-destination ${m.clusterIP}:${p.servicePort}`,
    ),
    `iptables -w 10 -t nat -A SNM-POSTROUTING-SNAT -m set --match-set ${short} src -m comment --comment ${quoted(`for Maping ${full} [${short}]`)} -j SNAT --to-source ${m.address}`,
  ]
}

/**
 * Loads the Go controller's layout into the lab's host as it would have programmed it, appending its
 * routing tables' `<id> <name>` lines to `rtTables`.
 */
export async function loadGoLayout(lab: Lab, rtTables: string, interfaces: GoInterface[], mappings: GoMapping[]): Promise<void> {
  const index = new Map<string, number>()
  for (const iface of interfaces) {
    const {stdout} = await lab.exec('host', 'ip', ['-j', 'link', 'show', iface.name])
    index.set(iface.name, (JSON.parse(stdout) as {ifindex: number}[])[0]!.ifindex)
  }
  const markOf = (address: string) => 0x800 + index.get(interfaces.find((i) => i.addresses.includes(address))!.name)!
  await appendFile(rtTables, interfaces.map((i) => `${goTableId(i.name)} ${i.name}\n`).join(''))
  const commands = [...initCommands(), ...interfaces.flatMap((i) => routingCommands(i, index.get(i.name)!)), ...mappings.flatMap((m) => mappingCommands(m, markOf(m.address)))]
  await lab.exec('host', 'sh', ['-ec', commands.join('\n')])
}
