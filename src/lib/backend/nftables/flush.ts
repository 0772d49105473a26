/** Removes everything the nftables backend owns: its table, ip rules and routes, its accept in iptables' FORWARD, and nothing else. */
import type {Runner} from '../../host/runner.js'
import {describeRouting} from '../../routing/payload.js'
import type {FlushReport} from '../result.js'
import {IPTABLES_FILTER_READ, outputOrUndefined, parseIptablesForward} from '../forward.js'
import {applyNftables} from './apply.js'
import {ownedForwardRules, writeForwardAccept} from './forward-accept.js'
import {TABLE} from './names.js'
import {readNftState} from './read.js'
import type {NftState} from './types.js'

/** The state with nothing of smartnat's in it: applying it removes exactly what smartnat owns. */
export function emptyNftState(): NftState {
  return {ipRules: [], routes: []}
}

function describe(actual: NftState, forwardRules: string[]): FlushReport['removed'] {
  return {
    jumps: forwardRules.map((rule) => `filter: ${rule}`),
    chains: actual.table?.chains.map((chain) => `${TABLE}: ${chain.name}`) ?? [],
    sets: actual.table?.sets.map((set) => `${TABLE}: ${set.name}`) ?? [],
    ...describeRouting(actual),
  }
}

/** Deletes the table, smartnat's ip rules and routes and its FORWARD accept; a second run finds nothing and writes nothing. */
export async function flushNftables(runner: Runner, options: {dryRun: boolean}): Promise<FlushReport> {
  const [actual, save] = await Promise.all([readNftState(runner), outputOrUndefined(runner, IPTABLES_FILTER_READ)])
  const forward = save === undefined ? undefined : parseIptablesForward(save)
  const forwardRules = forward === undefined ? [] : ownedForwardRules(forward)
  const removed = describe(actual, forwardRules)
  // An empty table still counts: it is smartnat's and flush removes it.
  const changed = actual.table !== undefined || Object.values(removed).some((items) => items.length > 0)
  if (changed && !options.dryRun) {
    await applyNftables(runner, emptyNftState())
    if (forward !== undefined && forwardRules.length > 0) await writeForwardAccept(runner, forward, false)
  }
  return {dryRun: options.dryRun, changed, removed}
}
