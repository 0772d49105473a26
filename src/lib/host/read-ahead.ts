/**
 * Reads started ahead. `status` reads the host through one shell (one-shell.ts) that runs the same
 * tools at its every run, and it used to start that shell some 40 ms after its own start: once the
 * CLI's script had compiled and oclif had parsed the flags. The CLI's entry now starts, at once, the
 * process the same command line started last time (startReadAhead), so that the host's tools run
 * while the script compiles; the runner takes it over when the command asks for exactly that
 * process, and else ends it and starts its own (readAhead).
 *
 * What each command line ran is kept in `read-ahead.json` beside the lock (/run/smartnat by default).
 * Its content is run, so it is used only when the user running smartnat owns it and its directory
 * and no one else may write to either, and only for a shell of reads: `sh -c SCRIPT`, under
 * `ip netns exec NAME` or not. The CLI's entry bundles this module on its own, with process.ts and
 * whole-file.ts: it imports nothing else of smartnat's.
 */
import {dirname, join} from 'node:path'

import {startProcess, type StartedProcess} from './process.js'
import {replaceWholeFile} from './whole-file.js'

/** A process as ExecRunner starts it: its command line and its timeouts. */
export interface ReadSpec {
  file: string
  args: string[]
  timeoutMs: number
  killAfterMs: number
}

interface Entry extends ReadSpec {
  /** The command line that ran it (readAheadKey). */
  key: string
}

/** What the entry found and started, for the runner to take over: kept on globalThis, since the entry and the CLI's script are bundled apart. */
interface Slot {
  /** The file of kept reads. */
  path: string
  key: string
  entries: Entry[]
  ahead?: {spec: ReadSpec; process: StartedProcess}
  /** The first read asked for took the slot; any later one starts its own process. */
  taken: boolean
}

const SLOT = Symbol.for('smartnat.read-ahead')
const FILE = 'read-ahead.json'
/** Command lines kept, the latest first. */
const KEPT = 16
/** More than any shell of reads: a larger file is not read. */
const MOST_BYTES = 1 << 20

type Global = typeof globalThis & {[SLOT]?: Slot}

/** The command line as a key: its arguments, the directory they are relative to, and smartnat's environment variables, which set flags too. */
export function readAheadKey(argv: readonly string[], cwd: string, env: NodeJS.ProcessEnv): string {
  const settings = Object.keys(env)
    .filter((name) => /^(SMARTNAT|SNCTRLR)_/.test(name))
    .sort()
    .map((name) => `${name}=${env[name]}`)
  return JSON.stringify([cwd, argv, settings])
}

/**
 * Starts the read this command line started last time, as recorded beside `lockPath`, and keeps
 * the slot the runner looks in. Node.js does not wait for it, and ends it at exit, unless taken over.
 */
export function startReadAhead(lockPath: string, key: string): void {
  const path = join(dirname(lockPath), FILE)
  const entries = readEntries(path)
  const slot: Slot = {path, key, entries, taken: false}
  const entry = entries.find((e) => e.key === key)
  if (entry) {
    const spec: ReadSpec = {file: entry.file, args: entry.args, timeoutMs: entry.timeoutMs, killAfterMs: entry.killAfterMs}
    const started = startProcess(spec.file, spec.args, {input: '', timeoutMs: spec.timeoutMs, killAfterMs: spec.killAfterMs})
    started.letGo()
    // Taken over, it ended before the command did; else it is of no use.
    process.once('exit', () => started.kill())
    slot.ahead = {spec, process: started}
  }
  ;(globalThis as Global)[SLOT] = slot
}

/**
 * The process for `spec`: the one started ahead when it is exactly that, else `start()`'s, which is
 * then kept for this command line's next run. Only the first read a process asks for is looked up.
 */
export function readAhead(spec: ReadSpec, start: () => StartedProcess): StartedProcess {
  const slot = (globalThis as Global)[SLOT]
  if (!slot || slot.taken) return start()
  slot.taken = true
  const {ahead} = slot
  if (ahead && sameSpec(ahead.spec, spec)) {
    ahead.process.hold()
    return ahead.process
  }
  ahead?.process.kill()
  if (isReadShell(spec)) keep(slot, spec)
  return start()
}

const sameSpec = (a: ReadSpec, b: ReadSpec) =>
  a.file === b.file && a.timeoutMs === b.timeoutMs && a.killAfterMs === b.killAfterMs && a.args.length === b.args.length && a.args.every((arg, i) => arg === b.args[i])

/** `sh -c SCRIPT`, or that under `ip netns exec NAME`: the one shape of process a kept read may have. */
function isReadShell({file, args}: ReadSpec): boolean {
  const shell = (words: readonly string[]) => words.length === 3 && words[0] === 'sh' && words[1] === '-c'
  if (file === 'sh') return shell([file, ...args])
  return file === 'ip' && args[0] === 'netns' && args[1] === 'exec' && /^[\w.-]+$/.test(args[2] ?? '') && shell(args.slice(3))
}

function isEntry(value: unknown): value is Entry {
  const e = value as Entry
  return (
    typeof e === 'object' &&
    e !== null &&
    typeof e.key === 'string' &&
    typeof e.file === 'string' &&
    Array.isArray(e.args) &&
    e.args.every((arg) => typeof arg === 'string') &&
    Number.isSafeInteger(e.timeoutMs) &&
    e.timeoutMs > 0 &&
    Number.isSafeInteger(e.killAfterMs) &&
    e.killAfterMs > 0
  )
}

/** Owned by this user and writable by no one else. */
function trusted(stats: {uid: number; mode: number}): boolean {
  return stats.uid === process.geteuid?.() && (stats.mode & 0o022) === 0
}

/** The kept reads of `path`; none when it is missing, unreadable, not trusted or not as written. */
function readEntries(path: string): Entry[] {
  const {closeSync, constants, fstatSync, openSync, readFileSync, statSync} = process.getBuiltinModule('node:fs')
  let fd: number
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW)
  } catch {
    return []
  }
  try {
    const stats = fstatSync(fd)
    if (!stats.isFile() || stats.size > MOST_BYTES || !trusted(stats) || !trusted(statSync(dirname(path)))) return []
    const parsed = JSON.parse(readFileSync(fd, 'utf8')) as {entries?: unknown}
    return Array.isArray(parsed.entries) ? parsed.entries.filter((e): e is Entry => isEntry(e) && isReadShell(e)) : []
  } catch {
    return []
  } finally {
    closeSync(fd)
  }
}

/** Keeps `spec` as what the slot's command line runs, first of at most KEPT; a file that cannot be written is not kept. */
function keep(slot: Slot, spec: ReadSpec): void {
  const entries = [{key: slot.key, ...spec}, ...slot.entries.filter((e) => e.key !== slot.key)].slice(0, KEPT)
  if (replaceWholeFile(slot.path, `${JSON.stringify({entries})}\n`, {mode: 0o600, makeDirectory: true})) slot.entries = entries
}
