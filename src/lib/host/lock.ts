/**
 * One smartnat at a time: an exclusive lock file, so a cron `sync` never applies while `watch` does.
 *
 * The lock file is created atomically with its content (written to a private file, then hard-linked
 * into place, which fails if the lock exists) and names its holder: pid, the kernel's start time of
 * that pid, and what it is doing. A lock whose holder is dead, or whose pid now belongs to another
 * process, is stale and is broken; breaking is itself serialised by a short-lived `.break` file so
 * two waiters cannot both break the same lock and then both hold it.
 */
import {randomBytes} from 'node:crypto'
import {link, mkdir, open, readFile, stat, unlink} from 'node:fs/promises'
import {readFileSync} from 'node:fs'
import {dirname} from 'node:path'

export const DEFAULT_LOCK_PATH = '/run/smartnat/smartnat.lock'

/** A breaker that crashed leaves its `.break` file behind; after this long it is ignored. */
const BREAK_FILE_STALE_MS = 10_000

export interface LockOptions {
  path?: string
  /** How long to wait for the holder to let go; 0 fails at once. */
  waitMs?: number
  /** How often to look again while waiting. */
  pollMs?: number
  /** What this process is doing, shown to whoever finds the lock held (e.g. "sync", "watch"). */
  purpose?: string
}

/** What a lock file says about its holder. */
export interface LockHolder {
  pid: number
  /** Start time of the pid in clock ticks since boot (/proc/PID/stat), to tell a reused pid apart. */
  processStart?: string
  acquiredAt: string
  purpose?: string
  token: string
}

/** The lock is held by a live process and waiting did not help. */
export class LockHeldError extends Error {
  constructor(
    readonly path: string,
    readonly holder: LockHolder | undefined,
    waitedMs: number,
  ) {
    const who = holder
      ? `smartnat${holder.purpose ? ` ${holder.purpose}` : ''} (pid ${holder.pid}, since ${holder.acquiredAt})`
      : 'another process'
    super(`${path} is held by ${who}; gave up after waiting ${waitedMs} ms`)
    this.name = 'LockHeldError'
  }
}

export interface Lock {
  readonly path: string
  /** Removes the lock file if it is still ours; safe to call more than once. */
  release(): Promise<void>
}

/** Takes the lock, waiting up to `waitMs` for a live holder and breaking a stale one. */
export async function acquireLock(options: LockOptions = {}): Promise<Lock> {
  const path = options.path ?? DEFAULT_LOCK_PATH
  const waitMs = options.waitMs ?? 0
  const pollMs = options.pollMs ?? 100
  const started = Date.now()
  await mkdir(dirname(path), {recursive: true, mode: 0o755})

  const holder: LockHolder = {
    pid: process.pid,
    ...optional('processStart', processStartTime(process.pid)),
    acquiredAt: new Date().toISOString(),
    ...optional('purpose', options.purpose),
    token: randomBytes(8).toString('hex'),
  }
  for (;;) {
    if (await createExclusive(path, `${JSON.stringify(holder)}\n`)) {
      return {path, release: () => removeIfHeldBy(path, holder.token)}
    }
    const current = await readHolder(path)
    if (current === 'gone') continue
    if (current === 'unreadable' || !isAlive(current)) {
      await breakStaleLock(path, current)
      continue
    }
    const waited = Date.now() - started
    if (waited >= waitMs) throw new LockHeldError(path, current, waited)
    await sleep(Math.min(pollMs, waitMs - waited))
  }
}

/** Runs `fn` while holding the lock, releasing it however `fn` ends. */
export async function withLock<T>(options: LockOptions, fn: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(options)
  try {
    return await fn()
  } finally {
    await lock.release()
  }
}

function optional<K extends string, V>(key: K, value: V | undefined): Partial<Record<K, V>> {
  return value === undefined ? {} : ({[key]: value} as Record<K, V>)
}

async function createExclusive(path: string, content: string): Promise<boolean> {
  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`
  const file = await open(temporary, 'wx', 0o644)
  try {
    await file.writeFile(content)
  } finally {
    await file.close()
  }
  try {
    await link(temporary, path)
    return true
  } catch (error) {
    if (errorCode(error) === 'EEXIST') return false
    throw new Error(`cannot create lock file ${path}: ${(error as Error).message}`, {cause: error})
  } finally {
    await unlink(temporary)
  }
}

async function readHolder(path: string): Promise<LockHolder | 'gone' | 'unreadable'> {
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return 'gone'
    throw new Error(`cannot read lock file ${path}: ${(error as Error).message}`, {cause: error})
  }
  try {
    const parsed = JSON.parse(text) as Partial<LockHolder>
    if (Number.isInteger(parsed.pid) && typeof parsed.token === 'string') return parsed as LockHolder
  } catch {
    // Not ours or damaged: a lock nobody can attribute is treated as stale.
  }
  return 'unreadable'
}

function isAlive(holder: LockHolder): boolean {
  try {
    process.kill(holder.pid, 0)
  } catch (error) {
    // EPERM: the pid exists but belongs to someone we may not signal.
    if (errorCode(error) !== 'EPERM') return false
  }
  if (holder.processStart === undefined) return true
  const now = processStartTime(holder.pid)
  return now === undefined || now === holder.processStart
}

async function breakStaleLock(path: string, seen: LockHolder | 'unreadable'): Promise<void> {
  const breaker = `${path}.break`
  try {
    await (await open(breaker, 'wx', 0o644)).close()
  } catch (error) {
    if (errorCode(error) !== 'EEXIST') throw error
    const age = await stat(breaker).then((s) => Date.now() - s.mtimeMs, () => 0)
    if (age > BREAK_FILE_STALE_MS) await unlink(breaker).catch(ignoreMissing)
    else await sleep(20)
    return
  }
  try {
    // Someone may have broken the lock and taken it since we looked: only remove what we judged stale.
    const current = await readHolder(path)
    const unchanged = current === 'unreadable' ? seen === 'unreadable' : current !== 'gone' && seen !== 'unreadable' && current.token === seen.token
    if (unchanged) await unlink(path).catch(ignoreMissing)
  } finally {
    await unlink(breaker).catch(ignoreMissing)
  }
}

async function removeIfHeldBy(path: string, token: string): Promise<void> {
  const current = await readHolder(path)
  if (current !== 'gone' && current !== 'unreadable' && current.token === token) await unlink(path).catch(ignoreMissing)
}

/** Field 22 of /proc/PID/stat, counted after the command name, which may itself contain spaces and parentheses. */
function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
  } catch {
    return undefined
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code
}

function ignoreMissing(error: unknown): void {
  if (errorCode(error) !== 'ENOENT') throw error
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
