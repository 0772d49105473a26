/**
 * Applies a desired IptablesState: reads the kernel (or trusts the caller's record of it), writes
 * only what differs, and puts the previous rules and sets back when the sets or the rules fail.
 *
 * Order: sets are created and refilled first (new rules may reference them), then one
 * iptables-restore for all tables, then sets nothing references any more are destroyed, then
 * ip rules and routes. When no set is created, the rules cannot reference one that is missing, and
 * the ipset and iptables-restore runs go at once: a Mapping changed in the watch waits for one tool
 * run instead of two.
 *
 * iptables-restore is not one transaction: legacy and nft variants alike commit each table at its
 * COMMIT line (xtables-restore: "Commit per table, although we support global commit at once"),
 * so when the filter part fails, mangle and nat already hold their new rules, using the new sets.
 * A failed restore therefore reads the tables back and restores the ones that committed before the
 * sets are rolled back underneath them.
 *
 * The Go controller's layout (sync --migrate) rides in the same payloads: its chains and jumps in the
 * iptables-restore, its sets in the cleanup; its ip rules, routes and rt_tables lines come last.
 */
import {readRtTables, writeRtTables} from '../../host/rt-tables.js'
import type {Runner} from '../../host/runner.js'
import {routingChangeCount} from '../../routing/diff.js'
import {goRoutingRemovalPayload, withoutGoTables} from '../../routing/legacy.js'
import {IP_BATCH, ipBatchPayload} from '../../routing/payload.js'
import {buildPayloads, readActual, runPayload, stderrOf, type FailedLine} from '../apply-steps.js'
import {IPTABLES_RESTORE} from '../iptables-syntax.js'
import {ApplyError} from '../result.js'
import type {ApplyOptions, ApplyResult, WriteCounts} from '../result.js'
import {TABLES, emptyIptablesState} from './types.js'
import type {IptablesState} from './types.js'
import {diffIptablesState, isEmptyChanges, natTablesToCompare} from './diff.js'
import type {IptablesChanges, SetChanges} from './diff.js'
import {changedEndpoints} from './endpoints.js'
import {ipsetCleanupPayload, ipsetPreparePayload, ipsetRollbackPayload, iptablesRestorePayload} from './payloads.js'
import {readIptablesState, readIptablesTables} from './read.js'
import {describeGoLayout, hasGoLayout, readGoLayout, type GoLayout} from './legacy.js'

export const IPSET_RESTORE: readonly [string, string[]] = ['ipset', ['restore', '-exist']]

/** How each tool names the payload line it failed on. */
// iptables-nft reports a refused commit as `line N: CHAIN_DEL failed (...)`, naming the line of the chain it could not change.
const FAILED_LINE = [/Error occurred at line: (\d+)/, /line (\d+) failed/, /^line (\d+): /m, /Error in line (\d+)/, /Command failed -:(\d+)/]

/** The line number a restore tool reported as failing, if it said. */
export function failedLine(stderr: string): number | undefined {
  for (const pattern of FAILED_LINE) {
    const match = pattern.exec(stderr)
    if (match) return Number(match[1])
  }
  return undefined
}

/** iptables-nft checks jump targets and sets only at COMMIT and blames that line; point at the first line using the missing name instead. */
export function culpritLine(payload: string, line: number, stderr: string): number {
  const lines = payload.split('\n')
  if (lines[line - 1] !== 'COMMIT') return line
  const missing = /Chain '([^']+)' does not exist|Set (\S+) doesn't exist/.exec(stderr)
  const name = missing?.[1] ?? missing?.[2]
  if (name === undefined) return line
  let first: number | undefined
  for (let n = line - 1; n >= 1 && !lines[n - 1]!.startsWith('*'); n--) {
    // Word by word, so that a name that is a prefix of another does not match.
    if (lines[n - 1]!.split(' ').includes(name)) first = n
  }
  return first ?? line
}

/** The line a restore tool blamed, and the line at fault. */
function locateFailedLine(stderr: string, payload: string): FailedLine | undefined {
  const reported = failedLine(stderr)
  return reported === undefined ? undefined : {reported, line: culpritLine(payload, reported, stderr)}
}

/** Runs one restore-style command; on failure throws an ApplyError naming the step and the failing line. */
function restore(runner: Runner, step: string, command: readonly [string, string[]], payload: string): Promise<void> {
  return runPayload(runner, step, command, payload, locateFailedLine)
}

/** Sets that a prepare payload swapped before failing at `line` (swaps are its last lines). */
function swappedBefore(payload: string, line: number | undefined): string[] {
  if (line === undefined) return []
  return payload
    .split('\n')
    .slice(0, line - 1)
    .filter((l) => l.startsWith('swap '))
    .map((l) => l.split(' ')[2] ?? '')
}

/** Best effort: puts the previous set contents back; a failure here is added to the original error. */
async function rollbackSets(runner: Runner, sets: SetChanges, swapped: string[], failure: ApplyError): Promise<never> {
  const payload = ipsetRollbackPayload(sets, swapped)
  if (payload) {
    try {
      await runner.run(IPSET_RESTORE[0], IPSET_RESTORE[1], {input: payload})
    } catch (error) {
      failure.message += `\nrolling back ipsets also failed: ${stderrOf(error)}`
    }
  }
  throw failure
}

/**
 * After a failed iptables-restore: restores every table that committed to `previous`. Returns false
 * (and says so in `failure`) when it could not, so that the sets those tables use stay as they are.
 */
async function rollbackTables(runner: Runner, previous: IptablesState, failure: ApplyError): Promise<boolean> {
  try {
    const now = {...previous, tables: await readIptablesTables(runner)}
    const payload = iptablesRestorePayload(diffIptablesState(previous, now))
    if (payload) await restore(runner, 'iptables-restore rollback', IPTABLES_RESTORE, payload)
    return true
  } catch (error) {
    failure.message +=
      `\nputting back the tables iptables-restore had committed also failed: ${error instanceof Error ? error.message : String(error)}` +
      '\nthe sets keep their new contents, as the new rules use them; the next sync rewrites everything'
    return false
  }
}

function countWrites(changes: IptablesChanges): WriteCounts {
  const {sets, routing} = changes
  let chains = 0
  let rules = 0
  for (const table of TABLES) {
    const c = changes.tables[table]
    chains += c.writeChains.length + c.editChains.length + c.deleteChains.length
    rules += c.writeChains.reduce((n, chain) => n + chain.rules.length, 0) + c.insertJumps.length + c.deleteJumps.length
    rules += c.editChains.reduce((n, edit) => n + edit.delete.length + edit.insert.length, 0)
  }
  return {
    sets: sets.create.length + sets.replace.length + sets.update.length + sets.destroy.length,
    chains,
    rules,
    routes: routingChangeCount(routing),
  }
}

/** The writes that remove the Go controller's layout, counted as smartnat's own are. */
function countGoWrites(written: WriteCounts, layout: GoLayout): WriteCounts {
  const tables = TABLES.map((t) => layout.iptables.tables[t])
  return {
    sets: written.sets + layout.iptables.sets.length,
    chains: written.chains + tables.reduce((n, t) => n + t.chains.length, 0),
    rules: written.rules + tables.reduce((n, t) => n + t.jumps.length + t.rules.length, 0),
    routes: written.routes + layout.routing.ipRules.length + layout.routing.routes.length,
  }
}

/** The ApplyError a write threw, or undefined when it succeeded. */
async function failureOf(write: Promise<void>): Promise<ApplyError | undefined> {
  try {
    await write
    return undefined
  } catch (error) {
    return error as ApplyError
  }
}

/**
 * Runs the ipset prepare payload and the iptables-restore payload: one after the other when a set
 * is created (a new rule may reference it), else at once. On a failure, the tables that committed
 * are put back first, then the old set contents, and the first failure is thrown.
 */
async function writeSetsAndRules(runner: Runner, {prepare, rules}: {prepare: string; rules: string}, sets: SetChanges, actual: IptablesState): Promise<void> {
  const writeSets = () => failureOf(prepare ? restore(runner, 'ipset prepare', IPSET_RESTORE, prepare) : Promise.resolve())
  const writeRules = () => failureOf(restore(runner, 'iptables-restore', IPTABLES_RESTORE, rules))
  let setsFailure: ApplyError | undefined
  let rulesFailure: ApplyError | undefined
  let rulesRan = false
  if (rules && sets.create.length === 0) {
    rulesRan = true
    // iptables-restore, the longer run, starts first: starting a process blocks this one while it forks.
    const writingRules = writeRules()
    ;[setsFailure, rulesFailure] = await Promise.all([writeSets(), writingRules])
  } else {
    setsFailure = await writeSets()
    if (!setsFailure && rules) {
      rulesRan = true
      rulesFailure = await writeRules()
    }
  }
  const failure = setsFailure ?? rulesFailure
  if (!failure) return
  if (setsFailure && rulesFailure) setsFailure.message += `\niptables-restore, run at the same time, also failed: ${rulesFailure.message}`
  // iptables-restore failed after earlier tables committed, or the sets failed under rules that committed whole: back to the old rules first, then their old sets.
  if (rulesRan && !(await rollbackTables(runner, actual, failure))) throw failure
  const swapped = setsFailure ? swappedBefore(prepare, failedLine(stderrOf(setsFailure.cause))) : sets.replace.map((s) => s.name)
  await rollbackSets(runner, sets, swapped, failure)
}

/**
 * Makes the kernel match `desired`, writing only what differs; nothing at all when they are equal.
 * With `legacy`, the Go controller's layout goes in the same ipset and iptables-restore payloads.
 */
export async function applyIptables(runner: Runner, desired: IptablesState, options: ApplyOptions<IptablesState> = {}): Promise<ApplyResult> {
  const full = options.full ?? false
  const {legacy: legacyOptions} = options
  const goLayout = legacyOptions ? readActual(undefined, () => readGoLayout(runner, legacyOptions)) : undefined
  goLayout?.catch(() => undefined)
  const actual = options.assumeActual !== undefined && !full ? options.assumeActual : await readActual(options.kernelRead, () => readIptablesState(runner))
  const legacy = await goLayout
  const changes = diffIptablesState(desired, actual, {full})
  const migrating = legacy !== undefined && hasGoLayout(legacy)
  const written = migrating ? countGoWrites(countWrites(changes), legacy) : countWrites(changes)
  const legacyResult = legacy ? {legacy: describeGoLayout(legacy)} : {}
  if (isEmptyChanges(changes) && !migrating) return {changed: false, written, changedEndpoints: [], ...legacyResult}

  const {sets} = changes
  if (sets.retype.length > 0) {
    const what = sets.retype.map((s) => `${s.name} is ${s.actual}, must be ${s.desired}`).join('; ')
    // ipset cannot swap sets of different types, and a set in use cannot be destroyed: only a flush gets out of this.
    throw new ApplyError('ipset', `${what}; run "smartnat flush" and sync again`)
  }

  const {prepare, rules, cleanup, routing} = buildPayloads(() => ({
    prepare: ipsetPreparePayload(sets),
    rules: iptablesRestorePayload(changes, legacy?.iptables),
    cleanup: ipsetCleanupPayload(sets, legacy?.iptables.sets),
    routing: ipBatchPayload(changes.routing),
  }))

  await writeSetsAndRules(runner, {prepare, rules}, sets, actual)

  if (cleanup) await restore(runner, 'ipset cleanup', IPSET_RESTORE, cleanup)

  if (routing) await restore(runner, 'ip rule/route', IP_BATCH, routing)

  // smartnat's reply routing is in place: the Go controller's tables are no longer needed.
  if (migrating) await removeGoRouting(runner, legacy)

  // Only the conntrack cleanup after the apply needs them: found once the kernel is written, not before.
  const nat = natTablesToCompare(desired, actual)
  return {changed: true, written, changedEndpoints: changedEndpoints(nat.desired, nat.actual), ...legacyResult}
}

/** After the iptables and ipset part: the Go controller's ip rules and routes, then its rt_tables lines (nothing refers to their names any more). */
async function removeGoRouting(runner: Runner, layout: GoLayout): Promise<void> {
  const payload = goRoutingRemovalPayload(layout.routing)
  if (payload) await restore(runner, 'ip rule/route (Go controller)', IP_BATCH, payload)
  if (layout.routing.tables.length > 0) {
    // Read again just before writing: only the lines found are taken out, whatever else changed since.
    const current = await readRtTables(layout.rtTables.path)
    await writeRtTables(layout.rtTables.path, withoutGoTables(current, layout.routing.tables))
  }
}

/** Removes the Go controller's layout alone (flush --legacy): one iptables-restore, one ipset restore, one ip batch, then rt_tables. */
export async function removeGoLayout(runner: Runner, layout: GoLayout): Promise<void> {
  const none = diffIptablesState(emptyIptablesState(), emptyIptablesState())
  const rules = iptablesRestorePayload(none, layout.iptables)
  if (rules) await restore(runner, 'iptables-restore (Go controller)', IPTABLES_RESTORE, rules)
  const sets = ipsetCleanupPayload(none.sets, layout.iptables.sets)
  if (sets) await restore(runner, 'ipset destroy (Go controller)', IPSET_RESTORE, sets)
  await removeGoRouting(runner, layout)
}
