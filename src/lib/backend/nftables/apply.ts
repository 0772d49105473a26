/**
 * Applies a desired NftState: reads the kernel (or trusts the caller's record of it), writes nothing when it matches, only set and map
 * elements, sets added or deleted and chains added, refilled or deleted when every set and chain that stays is declared the same,
 * and otherwise replaces the table in one `nft -f` transaction.
 * Then ip rules and routes. nft commits all or nothing, so a failed apply leaves the old table.
 */
import type {Runner} from '../../host/runner.js'
import {routingChangeCount} from '../../routing/diff.js'
import {IP_BATCH, ipBatchPayload} from '../../routing/payload.js'
import {buildPayloads, readActual, runPayload, type FailedLine} from '../apply-steps.js'
import type {ApplyOptions, ApplyResult, WriteCounts} from '../result.js'
import {changedEndpoints, diffNftState, isEmptyChanges, type NftChanges} from './diff.js'
import {nftPayload} from './payloads.js'
import {readNftState} from './read.js'
import {NFT_INTERACTIVE, type NftSession} from './session.js'
import type {NftState, NftTable} from './types.js'

export const NFT_APPLY: readonly [string, string[]] = ['nft', ['-f', '-']]
const RAN = {stdout: '', stderr: '', exitCode: 0}

/** The payload line nft blames: it prints `/dev/stdin:LINE:COLUMNS: Error: ...`, then the line and a caret. */
export function failedNftLine(stderr: string): number | undefined {
  const match = /^\/dev\/stdin:(\d+):/m.exec(stderr)
  return match ? Number(match[1]) : undefined
}

function locateNftLine(stderr: string): FailedLine | undefined {
  const line = failedNftLine(stderr)
  return line === undefined ? undefined : {reported: line, line}
}

function countTable(table: NftTable | undefined): WriteCounts {
  return {
    sets: table?.sets.length ?? 0,
    chains: table?.chains.length ?? 0,
    rules: table?.chains.reduce((n, chain) => n + chain.rules.length, 0) ?? 0,
    routes: 0,
  }
}

/** Sets written (whole, or elements only), chains and rules written, and ip rule/route changes. */
function countWrites(changes: NftChanges, desired: NftState, actual: NftState): WriteCounts {
  const routes = routingChangeCount(changes.routing)
  switch (changes.table.kind) {
    case 'none':
      return {sets: 0, chains: 0, rules: 0, routes}
    case 'elements':
      return {sets: changes.table.sets.length, chains: 0, rules: 0, routes}
    case 'partial': {
      const {sets, addSets, deleteSets, addChains, refillChains, deleteChains} = changes.table
      const filled = [...addChains, ...refillChains]
      return {
        // A set created with elements is one set written, not two.
        sets: new Set([...sets.map((c) => c.set.name), ...addSets.map((s) => s.name), ...deleteSets.map((s) => s.name)]).size,
        chains: filled.length + deleteChains.length,
        rules: filled.reduce((n, chain) => n + chain.rules.length, 0),
        routes,
      }
    }
    case 'replace':
      return {...countTable(desired.table), routes}
    case 'delete':
      return {...countTable(actual.table), routes}
  }
}

/**
 * Makes the kernel match `desired`, writing only what differs; nothing at all when they are equal.
 * Element changes go through `session` when there is one (a daemon's), everything else through `nft -f`.
 */
export async function applyNftables(runner: Runner, desired: NftState, options: ApplyOptions<NftState> = {}, session?: NftSession): Promise<ApplyResult> {
  const full = options.full ?? false
  const actual = options.assumeActual !== undefined && !full ? options.assumeActual : await readActual(options.kernelRead, () => readNftState(runner))
  const changes = diffNftState(desired, actual, {full})
  const written = countWrites(changes, desired, actual)
  if (isEmptyChanges(changes)) return {changed: false, written, changedEndpoints: []}

  const {table, routing} = buildPayloads(() => ({table: nftPayload(changes.table, desired), routing: ipBatchPayload(changes.routing)}))
  if (table) {
    if (changes.table.kind === 'elements' && (await session?.takes(table))) await runPayload({run: () => session!.run(table).then(() => RAN)}, 'nft', NFT_INTERACTIVE, table)
    else await runPayload(runner, 'nft', NFT_APPLY, table, locateNftLine)
  }
  if (routing) await runPayload(runner, 'ip rule/route', IP_BATCH, routing)
  // Only the conntrack cleanup after the apply needs them: found once the kernel is written, not before.
  return {changed: true, written, changedEndpoints: changedEndpoints(desired, actual, changes.table)}
}
