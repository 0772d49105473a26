/**
 * What the Go SmartNat controller installed, read from the host: its chains, jumps, rules and ipsets
 * (an iptables layout), its ip rules and routing tables, and its rt_tables lines (routing/legacy.ts).
 * apply.ts removes it: alone for `flush --legacy` (flush.ts), with a sync's apply for `sync --migrate`.
 */
import {CommandError, kernelOutput, type Runner} from '../../host/runner.js'
import {readRtTables} from '../../host/rt-tables.js'
import {describeGoRouting, parseGoRouting, type GoRouting} from '../../routing/legacy.js'
import {parseJsonArray} from '../../routing/parse.js'
import {ROUTING_READ_COMMANDS} from '../../routing/read.js'
import type {LegacyOptions, LegacyRemoved} from '../result.js'
import {isEmptyGoLayout, parseGoIptablesLayout, type GoIptablesLayout} from './legacy-layout.js'
import {TABLES} from './types.js'

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
