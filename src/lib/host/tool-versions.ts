/**
 * What each tool's version command answered, kept in a small file beside the lock (by default
 * /run/smartnat/tool-versions.json: tmpfs, gone at reboot) for the executable it came from. A version
 * changes only with its binary, yet asking it is a process start per tool at every `status` and
 * `sync`; an answer is used again only while the tool's name still leads to the same file, unchanged
 * (its path past links, device, inode, size and modification time). A tool not found is never kept.
 * A file that cannot be read, written or parsed is not used, and the tools are asked as without it.
 */
import {readFileSync, realpathSync, statSync} from 'node:fs'
import {dirname, join} from 'node:path'

import {replaceWholeFile} from './whole-file.js'

/** The cache's file in the lock's directory (`--lock-file`): the run directory the DaemonSet mounts from the host. */
export function toolVersionsPath(lockPath: string): string {
  return join(dirname(lockPath), 'tool-versions.json')
}

export interface ToolVersions {
  /** What `name`'s version command printed when last asked, if its executable has not changed since. */
  get(name: string): string | undefined
  /** Keeps what `name`'s version command printed, for the executable `get` found; after a `get` of the same name only. */
  set(name: string, output: string): void
}

interface Entry {
  /** The executable, links resolved. */
  file: string
  /** `dev:ino:size:mtimeNs` */
  stamp: string
  output: string
}

/** The cache kept in `path`; `searchPath` is where the tools are looked up, as exec does (PATH). */
export function toolVersionsFile(path: string, searchPath = process.env.PATH ?? ''): ToolVersions {
  let entries: Record<string, Entry> | undefined
  /** What `get` found of each name, stamped before its version command ran: a binary replaced meanwhile is asked again next time. */
  const found = new Map<string, Omit<Entry, 'output'>>()
  const load = () => (entries ??= readEntries(path))
  return {
    get(name) {
      const executable = identify(name, searchPath)
      if (!executable) {
        found.delete(name)
        return undefined
      }
      found.set(name, executable)
      const entry = load()[name]
      return entry && entry.file === executable.file && entry.stamp === executable.stamp ? entry.output : undefined
    },
    set(name, output) {
      const executable = found.get(name)
      if (!executable) return
      const all = load()
      all[name] = {...executable, output}
      writeEntries(path, all)
    },
  }
}

/** The executable exec would run for `name` (the first regular, executable file of that name on the search path), with its stamp. */
function identify(name: string, searchPath: string): Omit<Entry, 'output'> | undefined {
  // An empty entry of PATH is the working directory: not a place whose tools are worth remembering.
  const candidates = name.includes('/') ? [name] : searchPath.split(':').filter((dir) => dir.startsWith('/')).map((dir) => join(dir, name))
  for (const candidate of candidates) {
    try {
      const stats = statSync(candidate, {bigint: true, throwIfNoEntry: false})
      if (!stats?.isFile() || (stats.mode & 0o111n) === 0n) continue
      return {file: realpathSync.native(candidate), stamp: `${stats.dev}:${stats.ino}:${stats.size}:${stats.mtimeNs}`}
    } catch {
      return undefined
    }
  }
  return undefined
}

function readEntries(path: string): Record<string, Entry> {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch {
    return {}
  }
  const entries: Record<string, Entry> = {}
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return entries
  for (const [name, value] of Object.entries(parsed)) {
    const {file, stamp, output} = (value ?? {}) as Partial<Record<keyof Entry, unknown>>
    if (typeof file === 'string' && typeof stamp === 'string' && typeof output === 'string') entries[name] = {file, stamp, output}
  }
  return entries
}

function writeEntries(path: string, entries: Record<string, Entry>): void {
  // The directory as the lock makes it, by root: status without root reads the lock's holder in it.
  replaceWholeFile(path, `${JSON.stringify(entries)}\n`, {mode: 0o644, makeDirectory: process.getuid?.() === 0})
}
