/** Reads the iptables backend's actual state back from the kernel, through a Runner. */
import {kernelOutput, type Runner} from '../../host/runner.js'
import {ROUTING_READ_COMMANDS, readRouting} from '../../routing/read.js'
import {TABLES} from './types.js'
import type {IptablesState, TableName, TableState} from './types.js'
import type {Counter} from '../parts.js'
import {parseIptablesCounters} from './counters.js'
import {parseIpsetSave, parseIptablesSave} from './parse.js'

/** The commands that print the kernel state smartnat owns; nothing else is run to read it. */
export const READ_COMMANDS = {
  iptables: ['iptables-save', []],
  ipset: ['ipset', ['save']],
  ...ROUTING_READ_COMMANDS,
} as const satisfies Record<string, readonly [string, readonly string[]]>

const COUNTED_READ = ['iptables-save', ['-c']] as const

/** Reads smartnat's chains, jumps, sets, ip rules and routes as they are in the kernel now. */
export async function readIptablesState(runner: Runner): Promise<IptablesState> {
  const [iptables, ipset, routing] = await Promise.all([kernelOutput(runner, READ_COMMANDS.iptables), kernelOutput(runner, READ_COMMANDS.ipset), readRouting(runner)])
  return {tables: ownedTables(iptables), sets: parseIpsetSave(ipset).sets, ...routing}
}

/** Reads the same state and the rules' counters with one `iptables-save -c` instead of two saves: status and explain show both. */
export async function readCountedIptablesState(runner: Runner): Promise<{state: IptablesState; counters: Map<string, Counter>}> {
  const [counted, ipset, routing] = await Promise.all([kernelOutput(runner, COUNTED_READ), kernelOutput(runner, READ_COMMANDS.ipset), readRouting(runner)])
  // Without its `[packets:bytes] ` prefixes, a rule reads as plain iptables-save prints it.
  const state = {tables: ownedTables(counted.replace(/^\[\d+:\d+\] /gm, '')), sets: parseIpsetSave(ipset).sets, ...routing}
  return {state, counters: parseIptablesCounters(counted)}
}

/** Reads smartnat's chains and jumps only (one iptables-save). */
export async function readIptablesTables(runner: Runner): Promise<IptablesState['tables']> {
  return ownedTables(await kernelOutput(runner, READ_COMMANDS.iptables))
}

function ownedTables(iptablesSave: string): IptablesState['tables'] {
  const parsed = parseIptablesSave(iptablesSave)
  return Object.fromEntries(TABLES.map((t): [TableName, TableState] => [t, {chains: parsed[t].chains, jumps: parsed[t].jumps}])) as Record<TableName, TableState>
}
