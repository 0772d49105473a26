/** Removes everything the iptables backend owns, decided by the ownership predicate alone, and nothing else; or, apart, the Go controller's layout. */
import type {Runner} from '../../host/runner.js'
import {describeRouting} from '../../routing/payload.js'
import type {FlushReport, LegacyOptions, LegacyReport} from '../result.js'
import {applyIptables, removeGoLayout} from './apply.js'
import {describeGoLayout, hasGoLayout, readGoLayout} from './legacy.js'
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

/** Removes the Go controller's layout and nothing else (flush --legacy); a dry run only reports it. */
export async function flushGoLayout(runner: Runner, options: LegacyOptions & {dryRun: boolean}): Promise<LegacyReport> {
  const layout = await readGoLayout(runner, options)
  const changed = hasGoLayout(layout)
  if (changed && !options.dryRun) await removeGoLayout(runner, layout)
  return {dryRun: options.dryRun, changed, removed: describeGoLayout(layout)}
}
