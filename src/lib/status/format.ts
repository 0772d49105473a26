/** `smartnat status` for a person: the host, its interfaces, one row per Mapping, then what is wrong. */
import type {ChalkInstance} from 'chalk'

import {formatTable} from '../format/columns.js'
import type {MappingFacts, MappingState} from '../inspect/facts.js'
import {toYaml} from '../source/yaml.js'
import type {HaStatus} from './ha.js'
import type {StatusReport} from './report.js'

export interface StatusFormat {
  paint: ChalkInstance
  /** `-o wide`: endpoints, allowed sources, bytes and addresses not on this host, too. */
  wide: boolean
}

/** The lines `smartnat status` prints. */
export function statusLines(report: StatusReport, format: StatusFormat): string[] {
  const {paint} = format
  const lines: string[] = [...hostLines(report, paint), '']
  const interfaces = report.host.interfaces.map((i) => [
    i.name,
    addressList(i.addresses, format.wide),
    i.table === null ? '-' : String(i.table),
    i.gateway ?? '-',
    i.rpFilter === null ? '?' : String(i.rpFilter),
  ])
  if (interfaces.length > 0) lines.push(...formatTable(['INTERFACE', 'ADDRESSES', 'TABLE', 'GATEWAY', 'RP_FILTER'], interfaces), '')
  else lines.push(paint.yellow('no external interface matches --interfaces'), '')

  if (report.mappings.length === 0) lines.push('no Mappings')
  else lines.push(...formatTable(mappingHeader(format.wide), report.mappings.map((m) => mappingRow(m, format))))

  const notes = report.mappings.filter((m) => m.reason !== null)
  if (notes.length > 0) lines.push('')
  for (const m of notes) lines.push(`${m.namespace}/${m.name}: ${stateText(m.state, paint)}: ${m.reason}`)
  lines.push('', ...driftLines(report, paint))
  return lines
}

/** The report as `-o json` or `-o yaml` prints it. */
export function statusDocument(report: StatusReport, output: 'json' | 'yaml'): string {
  return output === 'json' ? JSON.stringify(report, null, 2) : toYaml(report).trimEnd()
}

/** Addresses shown before the rest is counted, unless `-o wide` asks for all of them. */
const SHOWN_ADDRESSES = 4

// An edge host may carry a hundred addresses: the table stays readable and says how many more there are.
function addressList(addresses: readonly string[], wide: boolean): string {
  if (wide || addresses.length <= SHOWN_ADDRESSES) return addresses.join(', ')
  return `${addresses.slice(0, SHOWN_ADDRESSES).join(', ')} and ${addresses.length - SHOWN_ADDRESSES} more`
}

function hostLines(report: StatusReport, paint: ChalkInstance): string[] {
  const {host} = report
  const tools = host.tools.map((t) => (t.present ? `${t.name} ${versionOf(t.version)}` : paint.red(`${t.name} missing`)))
  const forward = host.ipForward === '1' ? 'ip_forward on' : paint.red(`ip_forward ${host.ipForward ?? 'unreadable'}`)
  const flavour = host.iptablesFlavour ? ` (${host.iptablesFlavour})` : ''
  const holder = host.lock.holder
  const who = holder ? `pid ${holder.pid}${holder.purpose ? ` (${holder.purpose})` : ''}${holder.since ? ` since ${holder.since}` : ''}` : ''
  const lock = !host.lock.held
    ? `lock free${holder ? ` (last held by ${who}, which ended without letting go)` : ''}`
    : holder
      ? `lock held by ${who}`
      : 'lock held (holder not recorded yet)'
  const lines = [`host: ${forward}; ${tools.join(', ')}${flavour}; ${lock}`]
  lines.push(
    report.kernel.readable
      ? `kernel: ${report.backend} rules read back${report.countsPackets ? '' : '; they keep no packet counters, so PACKETS shows -'}`
      : paint.yellow(`kernel: cannot read the ${report.backend} rules (${report.kernel.reason}); states below are the desired ones`),
  )
  for (const problem of host.problems) lines.push(paint.red(`problem: ${problem}`))
  if (report.ha) lines.push(...haLines(report.ha, paint))
  return lines
}

function haLines(ha: HaStatus, paint: ChalkInstance): string[] {
  const roles = ha.floating.map((f) => `${f.address} (${f.interface}) ${f.role === 'active' ? paint.green('active') : 'standby'}`)
  const {sync} = ha
  const syncText = sync.healthy
    ? paint.green(`sync healthy on ${sync.device} (peer heard: ${sync.packetsFromPeer} messages in the sample)`)
    : paint.red(`sync not healthy: ${sync.problem}`)
  return [`ha: ${roles.join(', ')}; ${syncText}`]
}

/** `iptables v1.8.9 (nf_tables)` -> `1.8.9`; anything else as printed. */
function versionOf(version: string | null): string {
  return /v?(\d+(?:\.\d+)+)/.exec(version ?? '')?.[1] ?? version ?? '?'
}

function mappingHeader(wide: boolean): string[] {
  const header = ['NAMESPACE/NAME', 'ADDRESSES', 'PORTS', 'MODE', 'VIP', 'READY', 'STATE', 'PACKETS']
  return wide ? [...header, 'BYTES', 'ENDPOINTS', 'SOURCES', 'NOT-LOCAL'] : header
}

function mappingRow(m: MappingFacts, format: StatusFormat): string[] {
  const ports = m.ports.map((p) => `${p.protocol}/${p.port}->${m.service}:${p.servicePort}`)
  const row = [
    `${m.namespace}/${m.name}`,
    m.addresses.join(',') || '-',
    ports.join(',') || '-',
    m.mode ?? '-',
    m.serviceVIP ?? '-',
    m.service === null ? '-' : String(m.endpoints.length),
    stateText(m.state, format.paint),
    m.packets === null ? '-' : String(m.packets),
  ]
  if (!format.wide) return row
  return [...row, m.bytes === null ? '-' : String(m.bytes), m.endpoints.join(',') || '-', m.allowedSources.join(',') || '-', m.notLocalAddresses.join(',') || '-']
}

function stateText(state: MappingState, paint: ChalkInstance): string {
  switch (state) {
    case 'configured':
      return paint.green(state)
    case 'invalid':
    case 'drifted':
    case 'faulty':
    case 'stale':
      return paint.red(state)
    default:
      return paint.yellow(state)
  }
}

function driftLines(report: StatusReport, paint: ChalkInstance): string[] {
  if (!report.kernel.readable) return [paint.yellow('drift: unknown (kernel not readable)')]
  if (!report.kernel.installed) return [paint.red('drift: the kernel holds none of smartnat’s rules; `smartnat sync` installs them')]
  const lines: string[] = []
  const add = (owner: string, drift: {missing: string[]; unexpected: string[]}) => {
    for (const part of drift.missing) lines.push(`  ${owner}  ${paint.red('missing')}     ${part}`)
    for (const part of drift.unexpected) lines.push(`  ${owner}  ${paint.red('unexpected')}  ${part}`)
  }
  add('(shared)', report.shared)
  for (const m of report.mappings) add(`${m.namespace}/${m.name}`, m.drift)
  if (lines.length === 0) return [paint.green('drift: none, the kernel matches the desired state')]
  return [paint.red('drift: the kernel differs from the desired state (`smartnat sync` repairs it):'), ...lines]
}
