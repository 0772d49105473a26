/** How the CLI shows a sync to a person: each Mapping's verdict, then the scripts or what was written. */
import chalk from 'chalk'

import type {MappingSummary, SyncOutput} from '../lib/app/sync.js'
import {describeRemoval} from '../lib/sync/guard.js'
import {unservedMessage} from '../lib/sync/status.js'

/** One line per Mapping: `default/web  configured on 198.18.0.10` or `default/bad  invalid: reason`. */
function verdictLines(mappings: MappingSummary[]): string[] {
  const width = Math.max(0, ...mappings.map((m) => `${m.namespace}/${m.name}`.length))
  return mappings.map((m) => {
    const id = `${m.namespace}/${m.name}`.padEnd(width)
    if (m.deleting !== undefined) return `${id}  ${chalk.yellow('deleting')}: ${m.reason}`
    if (!m.valid) return `${id}  ${chalk.red('invalid')}: ${m.reason}`
    const served = Object.keys(m.configuredAddresses).filter((address) => !(address in m.faults))
    const faults = Object.entries(m.faults).map(([address, reason]) => `${chalk.red('not served')} on ${address}: ${reason}`)
    const configured = served.length > 0 ? [`${chalk.green('configured')} on ${served.join(', ')}`] : []
    const state = configured.length + faults.length > 0 ? [...configured, ...faults].join('; ') : `${chalk.yellow('valid')}, no address on this host`
    const remote = m.notLocalAddresses.length > 0 ? ` (not local: ${m.notLocalAddresses.join(', ')})` : ''
    const unserved = m.unservedPorts ? `; ${chalk.yellow(unservedMessage(m.unservedPorts))}` : ''
    return `${id}  ${state}${remote}${unserved}`
  })
}

/** What `smartnat sync` prints on stdout: verdicts, then a dry run's scripts, or what a sync wrote. */
export function syncLines(output: SyncOutput): string[] {
  const lines = verdictLines(output.mappings)
  if (output.dryRun) {
    for (const payload of output.scripts ?? []) lines.push(`\n# ${payload.command}\n${payload.text.trimEnd()}`)
    return lines
  }
  if (output.massRemoval) lines.push(`removed ${describeRemoval(output.massRemoval)}, as --allow-mass-removal allows`)
  const deleted = output.conntrackDeleted ?? 0
  const dropped = `${deleted} stale connection${deleted === 1 ? '' : 's'} dropped`
  const written = output.written
  lines.push(
    output.changed && written
      ? `applied: ${written.chains} chains, ${written.rules} rules, ${written.sets} sets, ${written.routes} routes written; ${dropped}`
      : `kernel already up to date: nothing written${deleted > 0 ? `; ${dropped}` : ''}`,
  )
  if (output.legacyRemoved) lines.push(legacyLine(output.legacyRemoved))
  return lines
}

/** What --migrate took away of the Go controller's, in one line. */
function legacyLine(removed: NonNullable<SyncOutput['legacyRemoved']>): string {
  const counts = Object.entries(removed).filter(([, items]) => items.length > 0)
  if (counts.length === 0) return 'nothing of the Go controller’s was left on this host'
  const named = counts.map(([kind, items]) => {
    const [one, many] = LEGACY_KINDS[kind as keyof typeof LEGACY_KINDS]
    return `${items.length} ${items.length === 1 ? one : many}`
  })
  return `removed the Go controller’s ${named.join(', ')}`
}

const LEGACY_KINDS = {
  jumps: ['jump', 'jumps'],
  chains: ['chain', 'chains'],
  rules: ['rule', 'rules'],
  sets: ['ipset', 'ipsets'],
  ipRules: ['ip rule', 'ip rules'],
  routes: ['route', 'routes'],
  rtTables: ['rt_tables entry', 'rt_tables entries'],
}
