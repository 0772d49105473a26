/** Reads the iptables backend's actual state back from the kernel, through a Runner. */
import type {Runner} from '../../host/runner.js'
import {TABLES} from './types.js'
import type {IptablesState, TableName, TableState} from './types.js'
import {parseIpRoutes, parseIpRules, parseIpsetSave, parseIptablesSave} from './parse.js'

/** The commands that print the kernel state smartnat owns; nothing else is run to read it. */
export const READ_COMMANDS = {
  iptables: ['iptables-save', []],
  ipset: ['ipset', ['save']],
  ipRules: ['ip', ['-4', '-j', 'rule', 'show']],
  routes: ['ip', ['-4', '-j', 'route', 'show', 'table', 'all']],
} as const satisfies Record<string, readonly [string, readonly string[]]>

async function output(runner: Runner, [command, args]: readonly [string, readonly string[]]): Promise<string> {
  try {
    return (await runner.run(command, [...args])).stdout
  } catch (error) {
    throw new Error(`reading kernel state: ${[command, ...args].join(' ')} failed`, {cause: error})
  }
}

/** Reads smartnat's chains, jumps, sets, ip rules and routes as they are in the kernel now. */
export async function readIptablesState(runner: Runner): Promise<IptablesState> {
  const [iptables, ipset, ipRules, routes] = await Promise.all([
    output(runner, READ_COMMANDS.iptables),
    output(runner, READ_COMMANDS.ipset),
    output(runner, READ_COMMANDS.ipRules),
    output(runner, READ_COMMANDS.routes),
  ])
  return {tables: ownedTables(iptables), sets: parseIpsetSave(ipset).sets, ipRules: parseIpRules(ipRules), routes: parseIpRoutes(routes)}
}

/** Reads smartnat's chains and jumps only (one iptables-save). */
export async function readIptablesTables(runner: Runner): Promise<IptablesState['tables']> {
  return ownedTables(await output(runner, READ_COMMANDS.iptables))
}

function ownedTables(iptablesSave: string): IptablesState['tables'] {
  const parsed = parseIptablesSave(iptablesSave)
  return Object.fromEntries(TABLES.map((t): [TableName, TableState] => [t, {chains: parsed[t].chains, jumps: parsed[t].jumps}])) as Record<TableName, TableState>
}
