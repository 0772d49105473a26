/**
 * Removing what the Go SmartNat controller installed: its chains, jumps, rules and ipsets (here, an
 * iptables layout), its ip rules and routing tables, and its rt_tables lines (routing/legacy.ts).
 * `flush --legacy` runs it alone; `sync --migrate` folds it into the iptables backend's apply.
 */
import {CommandError, kernelOutput, type Runner} from '../../host/runner.js'
import {readRtTables, writeRtTables} from '../../host/rt-tables.js'
import {describeGoRouting, goRoutingRemovalPayload, parseGoRouting, withoutGoTables, type GoRouting} from '../../routing/legacy.js'
import {parseJsonArray} from '../../routing/parse.js'
import {IP_BATCH} from '../../routing/payload.js'
import {ROUTING_READ_COMMANDS} from '../../routing/read.js'
import {runPayload} from '../apply-steps.js'
import {IPTABLES_RESTORE} from '../iptables-syntax.js'
import type {LegacyOptions, LegacyRemoved, LegacyReport} from '../result.js'
import {diffIptablesState} from './diff.js'
import {isEmptyGoLayout, parseGoIptablesLayout, type GoIptablesLayout} from './legacy-layout.js'
import {ipsetCleanupPayload, iptablesRestorePayload} from './payloads.js'
import {TABLES, emptyIptablesState} from './types.js'

const IPSET_DESTROY: readonly [string, string[]] = ['ipset', ['restore', '-exist']]

/** Everything of the Go controller's on a host, and the rt_tables text it was found in. */
export interface GoLayout {
  iptables: GoIptablesLayout
  routing: GoRouting
  rtTables: {path: string; text: string}
}

/** What an iptables or ipset read prints; nothing where the tool is not installed (an nftables-only host): the Go controller needed both. */
async function outputIfInstalled(runner: Runner, command: readonly [string, readonly string[]]): Promise<string> {
  try {
    return await kernelOutput(runner, command)
  } catch (error) {
    const failure = (error as Error).cause
    const missing = failure instanceof CommandError && failure.exitCode === undefined && (failure.cause as NodeJS.ErrnoException | undefined)?.code === 'ENOENT'
    if (missing) return ''
    throw error
  }
}

/** Reads the Go controller's layout: one iptables-save, one ipset save, ip rules and routes, and rt_tables. */
export async function readGoLayout(runner: Runner, options: LegacyOptions): Promise<GoLayout> {
  const [iptables, ipset, rules, routes, rtTables] = await Promise.all([
    outputIfInstalled(runner, ['iptables-save', []]),
    outputIfInstalled(runner, ['ipset', ['save']]),
    kernelOutput(runner, ROUTING_READ_COMMANDS.ipRules),
    kernelOutput(runner, ROUTING_READ_COMMANDS.routes),
    readRtTables(options.rtTables),
  ])
  return {
    iptables: parseGoIptablesLayout(iptables, ipset),
    routing: parseGoRouting(rtTables, parseJsonArray(rules, 'ip -j rule show'), parseJsonArray(routes, 'ip -j route show table all')),
    rtTables: {path: options.rtTables, text: rtTables},
  }
}

/** What removing `layout` takes away, one line each. */
export function describeGoLayout(layout: GoLayout): LegacyRemoved {
  const {tables, sets} = layout.iptables
  return {
    jumps: TABLES.flatMap((t) => tables[t].jumps.map((jump) => `${t}: ${jump}`)),
    chains: TABLES.flatMap((t) => tables[t].chains.map((chain) => `${t}: ${chain}`)),
    rules: TABLES.flatMap((t) => tables[t].rules.map((rule) => `${t}: ${rule}`)),
    sets: [...sets],
    ...describeGoRouting(layout.routing),
  }
}

/** Whether anything of the Go controller's is on the host. */
export function hasGoLayout(layout: GoLayout): boolean {
  const {routing} = layout
  return !isEmptyGoLayout(layout.iptables) || routing.ipRules.length + routing.routes.length + routing.tables.length > 0
}

/** After the iptables and ipset part: its ip rules and routes, then its rt_tables lines (nothing refers to their names any more). */
export async function removeGoRouting(runner: Runner, layout: GoLayout): Promise<void> {
  const payload = goRoutingRemovalPayload(layout.routing)
  if (payload) await runPayload(runner, 'ip rule/route (Go controller)', IP_BATCH, payload)
  if (layout.routing.tables.length > 0) {
    // Read again just before writing: only the lines found are taken out, whatever else changed since.
    const current = await readRtTables(layout.rtTables.path)
    await writeRtTables(layout.rtTables.path, withoutGoTables(current, layout.routing.tables))
  }
}

/** Removes the Go controller's layout and nothing else (flush --legacy); a dry run only reports it. */
export async function flushGoLayout(runner: Runner, options: LegacyOptions & {dryRun: boolean}): Promise<LegacyReport> {
  const layout = await readGoLayout(runner, options)
  const removed = describeGoLayout(layout)
  const changed = hasGoLayout(layout)
  if (changed && !options.dryRun) {
    const none = diffIptablesState(emptyIptablesState(), emptyIptablesState())
    const rules = iptablesRestorePayload(none, layout.iptables)
    if (rules) await runPayload(runner, 'iptables-restore (Go controller)', IPTABLES_RESTORE, rules)
    const sets = ipsetCleanupPayload(none.sets, layout.iptables.sets)
    if (sets) await runPayload(runner, 'ipset destroy (Go controller)', IPSET_DESTROY, sets)
    await removeGoRouting(runner, layout)
  }
  return {dryRun: options.dryRun, changed, removed}
}
