/** Removes everything the nftables backend owns: its table, ip rules and routes, and nothing else. */
import type {Runner} from '../../host/runner.js'
import type {FlushReport} from '../result.js'
import {applyNftables} from './apply.js'
import {TABLE} from './names.js'
import {readNftState} from './read.js'
import {ipRouteArgs, ipRuleArgs} from './routing.js'
import type {NftState} from './types.js'

/** The state with nothing of smartnat's in it: applying it removes exactly what smartnat owns. */
export function emptyNftState(): NftState {
  return {ipRules: [], routes: []}
}

function describe(actual: NftState): FlushReport['removed'] {
  return {
    jumps: [],
    chains: actual.table?.chains.map((chain) => `${TABLE}: ${chain.name}`) ?? [],
    sets: actual.table?.sets.map((set) => `${TABLE}: ${set.name}`) ?? [],
    ipRules: actual.ipRules.map((rule) => ipRuleArgs(rule).join(' ')),
    routes: actual.routes.map((route) => ipRouteArgs(route).join(' ')),
  }
}

/** Deletes the table and smartnat's ip rules and routes; a second run finds nothing and writes nothing. */
export async function flushNftables(runner: Runner, options: {dryRun: boolean}): Promise<FlushReport> {
  const actual = await readNftState(runner)
  const removed = describe(actual)
  // An empty table still counts: it is smartnat's and flush removes it.
  const changed = actual.table !== undefined || Object.values(removed).some((items) => items.length > 0)
  if (changed && !options.dryRun) await applyNftables(runner, emptyNftState())
  return {dryRun: options.dryRun, changed, removed}
}
