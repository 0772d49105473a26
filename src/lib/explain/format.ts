/** `smartnat explain` for a person: a Mapping's facts and rules, or a packet's path step by step. */
import type {ChalkInstance} from 'chalk'

import {formatTable} from '../format/columns.js'
import type {GroupFacts} from '../inspect/facts.js'
import type {MappingExplanation, PartReport} from './mapping.js'
import type {PacketExplanation, TraceReport} from './packet.js'
import {ROUTE_NEEDED, routeAdvice, routeText, type MemberRoute} from './routes.js'

/** The lines `smartnat explain NAMESPACE/NAME` prints. */
export function mappingExplanationLines(e: MappingExplanation, paint: ChalkInstance): string[] {
  const m = e.mapping
  const state = m.state === 'configured' ? paint.green(m.state) : m.state === 'not-local' || m.state === 'unverified' || m.state === 'deleting' ? paint.yellow(m.state) : paint.red(m.state)
  const lines = [`Mapping ${m.namespace}/${m.name}: ${state}${m.reason ? ` - ${m.reason}` : ''}`]
  const facts: [string, string][] = [
    ['Mode', m.mode ?? '-'],
    ['Service', m.service ? `${m.namespace}/${m.service}` : '-'],
    ['VIP', m.serviceVIP ?? '-'],
    ['Endpoints', m.service ? `${m.endpoints.length} ready${m.endpoints.length > 0 ? `: ${m.endpoints.join(', ')}` : ''}` : '-'],
    ...m.groups.map((g, i): [string, string] => [i === 0 ? 'Groups' : '', groupLine(g)]),
    ['Addresses', `${m.addresses.join(', ') || 'none on this host'}${m.notLocalAddresses.length > 0 ? ` (not local: ${m.notLocalAddresses.join(', ')})` : ''}`],
    ['Sources', m.allowedSources.join(', ') || '-'],
    ['Ports', m.ports.map((p) => `${p.protocol}/${p.port} -> ${m.service}:${p.servicePort}`).join(', ') || '-'],
  ]
  for (const [label, value] of facts) lines.push(`  ${label.padEnd(10)} ${value}`)
  if (m.groups.length > 0) lines.push(...routeLines(e, paint, `  ${'Routes'.padEnd(10)} `))
  if (!e.kernel.readable) lines.push(paint.yellow(`warning: cannot read the kernel's rules (${e.kernel.reason}); showing the desired rules only`))
  else if (!e.kernel.installed) lines.push(paint.red('the kernel holds none of smartnat’s rules; `smartnat sync` installs them'))

  if (e.parts.length > 0) {
    lines.push('', 'Rules and set entries that implement it:')
    lines.push(...formatTable(['KERNEL', 'PACKETS', 'WHERE', 'RULE'], e.parts.map((p) => partRow(p, paint))).map((l) => `  ${l}`))
  }
  if (e.unexpected.length > 0) {
    lines.push('', paint.red('In the kernel for it, but not desired:'))
    lines.push(...formatTable(['KERNEL', 'PACKETS', 'WHERE', 'RULE'], e.unexpected.map((p) => partRow(p, paint))).map((l) => `  ${l}`))
  }
  const shared = [...e.shared.missing.map((p) => `missing     ${p}`), ...e.shared.unexpected.map((p) => `unexpected  ${p}`)]
  if (shared.length > 0 && e.kernel.installed) lines.push('', paint.red('Drift in what every Mapping relies on:'), ...shared.map((l) => `  ${l}`))
  return lines
}

/** `default/web tcp/80 -> 198.19.200.11:8080, 198.19.200.12:8080 (ClientIP affinity 10800 s)` */
function groupLine(g: GroupFacts): string {
  const members = g.members.length > 0 ? g.members.join(', ') : 'none: new connections are refused'
  const notes = [...(g.terminating ? ['terminating, none ready'] : []), ...(g.affinitySeconds === null ? [] : [`ClientIP affinity ${g.affinitySeconds} s`])]
  return `${g.id} -> ${members}${notes.length > 0 ? ` (${notes.join('; ')})` : ''}`
}

/** Mode direct: the route to each member, and what to add when one is missing. */
function routeLines(e: {routes: MemberRoute[] | null; routeError: string | null}, paint: ChalkInstance, label: string): string[] {
  if (e.routes === null) {
    const why = e.routeError === null ? '' : ` (lookup failed: ${e.routeError})`
    return [`${label}${paint.yellow(`not checked${why}; ${ROUTE_NEEDED}`)}`]
  }
  const lines = e.routes.map((r, i) => {
    const text = `${r.ip} ${routeText(r)}`
    return `${i === 0 ? label : ' '.repeat(label.length)}${r.error !== null || r.external ? paint.red(text) : text}`
  })
  const advice = routeAdvice(e.routes)
  return advice === null ? lines : [...lines, paint.red(`warning: ${advice}`)]
}

function partRow(p: PartReport, paint: ChalkInstance): string[] {
  const present = p.inKernel === null ? paint.yellow('?') : p.inKernel ? paint.green('yes') : paint.red('MISSING')
  const counted = p.packets === null ? '-' : `${p.packets}/${p.bytes}B`
  return [present, counted, p.where, p.text]
}

/** The lines `smartnat explain --src --dst` prints. */
export function packetExplanationLines(e: PacketExplanation, paint: ChalkInstance): string[] {
  const lines = [`packet ${e.packet.src} -> ${e.packet.dst}/${e.packet.protocol}${e.packet.inInterface ? ` in ${e.packet.inInterface}` : ''}`]
  lines.push(`verdict ${verdictText(e.verdict, paint)}${e.target ? ` -> ${e.target}` : ''}${e.mapping ? ` by ${e.mapping}` : ''} (${e.decidedBy === 'kernel' ? 'the kernel' : 'desired rules'})`)
  lines.push(`why     ${e.reason}`)
  if (e.reply) {
    const route = e.reply.table === 'main' ? 'main table' : `table ${e.reply.table}${e.reply.gateway ? ` via ${e.reply.gateway}` : ''}`
    const missing = e.reply.inKernel === false ? paint.red(' (the kernel lacks this table or its ip rule: replies follow the main table)') : ''
    lines.push(`reply   connmark ${e.reply.mark} -> ${route} dev ${e.reply.interface}${missing}`)
  }
  if (e.group) {
    lines.push(`members ${e.group.members.join(', ') || 'none'}`)
    lines.push(...routeLines(e, paint, 'routes  '))
  }
  for (const warning of e.warnings) lines.push(paint.yellow(`warning: ${warning}`))
  lines.push(...traceLines(e.kernel ?? e.desired, e.kernel ? 'the kernel' : 'desired rules'))
  if (e.kernel && !e.agree) lines.push(...traceLines(e.desired, 'desired rules'))
  return lines
}

function traceLines(t: TraceReport, label: string): string[] {
  const rows = t.steps.map((s, i) => [String(i + 1), `${s.table}/${s.chain}`, s.rule])
  const lines = ['', `steps through ${label}:`]
  if (rows.length === 0) lines.push('  (no smartnat rule matched)')
  else lines.push(...formatTable(['#', 'CHAIN', 'RULE'], rows).map((l) => `  ${l}`))
  if (t.dropRule) lines.push(`  dropped by ${t.dropRule}`)
  return lines
}

function verdictText(verdict: PacketExplanation['verdict'], paint: ChalkInstance): string {
  return verdict === 'forward' ? paint.green(verdict) : verdict === 'drop' || verdict === 'reject' ? paint.red(verdict) : paint.yellow(verdict)
}
