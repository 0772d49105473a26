/** Removes everything the iptables backend owns, decided by the ownership predicate alone, and nothing else. */
import type {Runner} from '../../host/runner.js'
import {describeRouting} from '../../routing/payload.js'
import type {FlushReport} from '../result.js'
import {applyIptables} from './apply.js'
import {readIptablesState} from './read.js'
import {TABLES, emptyIptablesState} from './types.js'
import type {IptablesState} from './types.js'

export interface FlushOptions {
  /** Report what would be removed without writing anything. */
  dryRun: boolean
}

function describe(actual: IptablesState): FlushReport['removed'] {
  return {
    jumps: TABLES.flatMap((t) => actual.tables[t].jumps.map((jump) => `${t}: ${jump}`)),
    chains: TABLES.flatMap((t) => actual.tables[t].chains.map((chain) => `${t}: ${chain.name}`)),
    sets: actual.sets.map((set) => set.name),
    ...describeRouting(actual),
  }
}

/** Removes smartnat's jumps, chains, sets, ip rules and routes; a second run finds nothing and writes nothing. */
export async function flushIptables(runner: Runner, options: FlushOptions): Promise<FlushReport> {
  const actual = await readIptablesState(runner)
  const removed = describe(actual)
  const changed = Object.values(removed).some((items) => items.length > 0)
  if (changed && !options.dryRun) await applyIptables(runner, emptyIptablesState())
  return {dryRun: options.dryRun, changed, removed}
}
