/**
 * One smartnat at a time: an exclusive lock, so a cron `sync` never applies while `watch` does.
 *
 * The lock is flock(2) on an open file description of the lock file. The kernel drops it when the
 * last descriptor of that description closes, so when its holder exits or is killed, and it knows
 * nothing of pids: it holds across PID namespaces and containers that share the file (the DaemonSet
 * mounts the host's /run/smartnat). Node has no flock binding, so util-linux's `flock` is handed our
 * descriptor as its fd 3, locks it and exits; the lock stays with the description, which from then
 * on only this process holds (Node opens files close-on-exec, so the commands smartnat runs later do
 * not inherit it).
 *
 * The file's content names the holder for whoever finds the lock taken; it never decides who holds
 * the lock, and a holder that was killed leaves its description behind for the next one to replace.
 * The file is never removed: a waiter would go on to lock a removed file that nobody else opens.
 */
import {constants, readlinkSync} from 'node:fs'
import type {FileHandle} from 'node:fs/promises'
import {dirname} from 'node:path'

import {fsPromises} from './fs-promises.js'
import {DEFAULT_LOCK_PATH} from './lock-path.js'

export {DEFAULT_LOCK_PATH}

/** The exit code asked of `flock` for "held by someone else", apart from its own errors. */
const CONFLICT_EXIT_CODE = 75

export interface LockOptions {
  path?: string
  /** How long to wait for the holder to let go; 0 fails at once. */
  waitMs?: number
  /** What this process is doing, shown to whoever finds the lock held (e.g. "sync", "watch"). */
  purpose?: string
  /** Called once when the lock is found held and waiting starts, with what the file says of the holder. */
  onWait?: (holder: LockHolder | undefined) => void
}

/** What a lock file says about its holder: for messages only, never to decide who holds the lock. */
export interface LockHolder {
  /** The holder's pid, as its own PID namespace numbers it. */
  pid: number
  /** The holder's PID namespace (`pid:[4026531836]`), to tell whether `pid` means anything here. */
  pidNamespace?: string
  acquiredAt: string
  purpose?: string
}

/** The lock is held by a live process and waiting did not help. */
export class LockHeldError extends Error {
  constructor(
    readonly path: string,
    readonly holder: LockHolder | undefined,
    readonly waitedMs: number,
  ) {
    super(`${path} is held by ${describeHolder(holder)}; gave up after waiting ${waitedMs} ms`)
    this.name = 'LockHeldError'
  }
}

export interface Lock {
  readonly path: string
  /** Clears the holder's description and lets go of the lock; safe to call more than once. */
  release(): Promise<void>
}

/** Whether the lock is held right now, and what its file says of the holder (possibly a dead one's). */
export interface LockState {
  held: boolean
  holder: LockHolder | undefined
}

/** Takes the lock, waiting up to `waitMs` for its holder to let go. */
export async function acquireLock(options: LockOptions = {}): Promise<Lock> {
  const path = options.path ?? DEFAULT_LOCK_PATH
  const waitMs = options.waitMs ?? 0
  const started = Date.now()
  let waitAnnounced = false
  await fsPromises().mkdir(dirname(path), {recursive: true, mode: 0o755})
  for (;;) {
    const file = await openLockFile(path)
    try {
      if ((await flock(file, path, 'exclusive', 0)) === 'busy') {
        const waited = Date.now() - started
        if (waited >= waitMs) throw new LockHeldError(path, await readHolder(path), waited)
        if (!waitAnnounced) options.onWait?.(await readHolder(path))
        waitAnnounced = true
        if ((await flock(file, path, 'exclusive', waitMs - waited)) === 'busy') throw new LockHeldError(path, await readHolder(path), Date.now() - started)
      }
      // Locked, but maybe a file someone removed or replaced since we opened it: lock the one at `path`.
      if (!(await isFileAt(file, path))) {
        await file.close()
        continue
      }
      await describeSelf(file, options.purpose)
      return heldLock(path, file)
    } catch (error) {
      await file.close()
      throw error
    }
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

/** Looks at the lock without taking it: a shared lock is granted only while no one holds it exclusively. */
export async function inspectLock(path: string): Promise<LockState> {
  let file: FileHandle
  try {
    file = await fsPromises().open(path, 'r')
  } catch (error) {
    if (errorCode(error) === 'ENOENT') return {held: false, holder: undefined}
    throw new Error(`cannot open lock file ${path}: ${(error as Error).message}`, {cause: error})
  }
  try {
    const held = (await flock(file, path, 'shared', 0)) === 'busy'
    return {held, holder: await readHolder(path)}
  } finally {
    // Closing drops the shared lock at once, so a sync starting now waits for nothing.
    await file.close()
  }
}

/** "smartnat watch (pid 42, since ...)", and which PID namespace when it is not this process's. */
function describeHolder(holder: LockHolder | undefined): string {
  if (!holder) return 'another process'
  const namespace = holder.pidNamespace && holder.pidNamespace !== ownPidNamespace() ? ` in another PID namespace, ${holder.pidNamespace}` : ''
  return `smartnat${holder.purpose ? ` ${holder.purpose}` : ''} (pid ${holder.pid}${namespace}, since ${holder.acquiredAt})`
}

/** The line said once when the lock is found held and the wait for it begins. */
export function waitingLine(path: string, waitMs: number, holder: LockHolder | undefined): string {
  return `waiting up to ${waitMs / 1000} s for ${path}, held by ${describeHolder(holder)}`
}

async function openLockFile(path: string): Promise<FileHandle> {
  try {
    // Read-write without truncating: the description of a holder is replaced only once the lock is ours.
    return await fsPromises().open(path, constants.O_RDWR | constants.O_CREAT, 0o644)
  } catch (error) {
    throw new Error(`cannot open lock file ${path}: ${(error as Error).message}`, {cause: error})
  }
}

/**
 * Has `flock` lock our open file description, waiting up to `waitMs` (event-driven: the kernel wakes
 * it when the holder lets go). The lock outlives `flock`, which exits at once: the description is ours.
 */
function flock(file: FileHandle, path: string, mode: 'exclusive' | 'shared', waitMs: number): Promise<'locked' | 'busy'> {
  const wait = waitMs > 0 ? ['--timeout', String(waitMs / 1000)] : ['--nonblock']
  const args = [`--${mode}`, ...wait, '--conflict-exit-code', String(CONFLICT_EXIT_CODE), '3']
  return new Promise((resolve, reject) => {
    // Loaded here, not at the top: a dry-run sync takes no lock and starts no process.
    const child = process.getBuiltinModule('node:child_process').spawn('flock', args, {stdio: ['ignore', 'ignore', 'pipe', file.fd]})
    let stderr = ''
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
    child.once('error', (error) => {
      const hint = errorCode(error) === 'ENOENT' ? ': `flock` (util-linux) is not on PATH' : `: ${error.message}`
      reject(new Error(`cannot lock ${path}${hint}`, {cause: error}))
    })
    child.once('close', (code, signal) => {
      if (code === 0) resolve('locked')
      else if (code === CONFLICT_EXIT_CODE) resolve('busy')
      else reject(new Error(`cannot lock ${path}: flock ${args.join(' ')} ${signal ? `was killed by ${signal}` : `exited with ${code}`}${stderr.trim() ? `: ${stderr.trim()}` : ''}`))
    })
  })
}

async function isFileAt(file: FileHandle, path: string): Promise<boolean> {
  const [ours, there] = await Promise.all([file.stat(), fsPromises().stat(path).catch(() => undefined)])
  return there !== undefined && there.ino === ours.ino && there.dev === ours.dev
}

async function describeSelf(file: FileHandle, purpose: string | undefined): Promise<void> {
  const pidNamespace = ownPidNamespace()
  const holder: LockHolder = {
    pid: process.pid,
    ...(pidNamespace ? {pidNamespace} : {}),
    acquiredAt: new Date().toISOString(),
    ...(purpose ? {purpose} : {}),
  }
  await file.truncate(0)
  await file.write(`${JSON.stringify(holder)}\n`, 0)
}

/**
 * Node closes a FileHandle it garbage-collects, and closing it lets go of the lock: a held lock
 * stays referenced here until released, whatever its caller keeps.
 */
const heldFiles = new Set<FileHandle>()

function heldLock(path: string, file: FileHandle): Lock {
  let released = false
  heldFiles.add(file)
  return {
    path,
    async release() {
      if (released) return
      released = true
      heldFiles.delete(file)
      try {
        await file.truncate(0)
      } finally {
        await file.close()
      }
    },
  }
}

/** The holder's description; empty (free, or just taken) or damaged reads as none. */
async function readHolder(path: string): Promise<LockHolder | undefined> {
  try {
    const parsed = JSON.parse(await fsPromises().readFile(path, 'utf8')) as Partial<LockHolder>
    if (Number.isInteger(parsed.pid) && typeof parsed.acquiredAt === 'string') return parsed as LockHolder
  } catch {
    // Being written, or not smartnat's: the lock itself still says whether it is held.
  }
  return undefined
}

function ownPidNamespace(): string | undefined {
  try {
    return readlinkSync('/proc/self/ns/pid')
  } catch {
    return undefined
  }
}

function errorCode(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code
}
