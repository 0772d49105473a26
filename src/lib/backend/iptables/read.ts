/** Reads the iptables backend's actual state back from the kernel, through a Runner. */
import {kernelLines, type Runner} from '../../host/runner.js'
import {ROUTING_READ_COMMANDS, readRouting} from '../../routing/read.js'
import {TABLES} from './types.js'
import type {IptablesState, TableName, TableState} from './types.js'
import type {Counter} from '../parts.js'
import {IptablesCounters} from './counters.js'
import {IpsetSaveParser, IptablesSaveParser, type ParsedIptables} from './parse.js'

/** The commands that print the kernel state smartnat owns; nothing else is run to read it. */
export const READ_COMMANDS = {
  iptables: ['iptables-save', []],
  ipset: ['ipset', ['save']],
  ...ROUTING_READ_COMMANDS,
} as const satisfies Record<string, readonly [string, readonly string[]]>

const COUNTED_READ = ['iptables-save', ['-c']] as const

/**
 * Reads smartnat's chains, jumps, sets, ip rules and routes as they are in the kernel now; chains and
 * sets found as they are in `like` (a daemon's last render) share its lists of rules and entries.
 */
export async function readIptablesState(runner: Runner, like?: IptablesState): Promise<IptablesState> {
  const [tables, sets, routing] = await Promise.all([readIptablesTables(runner, like?.tables), readOwnedSets(runner, like?.sets), readRouting(runner)])
  return {tables, sets, ...routing}
}

/** Reads the same state and the rules' counters with one `iptables-save -c` instead of two saves: status and explain show both. */
export async function readCountedIptablesState(runner: Runner): Promise<{state: IptablesState; counters: Map<string, Counter>}> {
  const parser = new IptablesSaveParser()
  const counted = new IptablesCounters()
  const [, sets, routing] = await Promise.all([kernelLines(runner, COUNTED_READ, (line) => parser.line(counted.line(line))), readOwnedSets(runner), readRouting(runner)])
  return {state: {tables: ownedTables(parser.finish()), sets, ...routing}, counters: counted.counters}
}

/** Reads smartnat's chains and jumps only (one iptables-save), taking the listing apart as it arrives. */
export async function readIptablesTables(runner: Runner, like?: IptablesState['tables']): Promise<IptablesState['tables']> {
  const parser = new IptablesSaveParser(like)
  await kernelLines(runner, READ_COMMANDS.iptables, (line) => parser.line(line))
  return ownedTables(parser.finish())
}

async function readOwnedSets(runner: Runner, like?: IptablesState['sets']): Promise<IptablesState['sets']> {
  const parser = new IpsetSaveParser(like)
  await kernelLines(runner, READ_COMMANDS.ipset, (line) => parser.line(line))
  return parser.finish().sets
}

function ownedTables(parsed: ParsedIptables): IptablesState['tables'] {
  return Object.fromEntries(TABLES.map((t): [TableName, TableState] => [t, {chains: parsed[t].chains, jumps: parsed[t].jumps}])) as Record<TableName, TableState>
}
