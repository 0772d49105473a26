/**
 * Reads manifest files whole. A writer that truncates a file and then writes it (cron, a GitOps
 * agent, `>` in a shell) lets a reader see any prefix of it, and a prefix of YAML often still
 * parses. So a read counts only when every file's size, modification time and inode, and a
 * directory's list of files, were the same before and after it, and no file was modified within
 * `quietMs` before it (a writer's truncation and its first write are moments apart, and a read
 * between them sees an empty file that holds still); otherwise it is tried again after a short
 * wait, and an error says so when the files never hold still.
 */
import {readdir, readFile, stat} from 'node:fs'
import {join} from 'node:path'
import {promisify} from 'node:util'

const MANIFEST = /\.ya?ml$/i

/** The file-system calls a read makes (node:fs by default; tests pass a scripted one). */
export interface ManifestFs {
  stat(path: string): Promise<{size: number; mtimeMs: number; ino: number; isDirectory(): boolean}>
  readdir(path: string): Promise<string[]>
  readFile(path: string): Promise<Buffer>
}

export interface StableReadOptions {
  /** Reads made before giving up on files that keep changing (default 5). */
  attempts?: number
  /** Wait before the second read, doubled before each further one (default 50 ms: 750 ms over 5 reads). */
  retryDelayMs?: number
  /** A file modified less than this long ago may still be being written (default 100 ms). */
  quietMs?: number
  fs?: ManifestFs
  sleep?: (ms: number) => Promise<void>
  /** Milliseconds since the epoch, the clock file modification times are on. */
  now?: () => number
}

/** One manifest file's text, as read whole. */
export interface ManifestText {
  file: string
  text: string
}

// node:fs's calls with callbacks: loading node:fs/promises (and the readline and watcher modules it
// loads) costs about 2 ms of a dry-run sync's start. Called through rather than captured: node:fs's
// exports may be replaced later (tests count stat calls).
const nodeFs: ManifestFs = {
  stat: (path) => promisify(stat)(path),
  readdir: (path) => promisify(readdir)(path),
  readFile: (path) => promisify(readFile)(path),
}
const sleepMs = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))

/** A YAML file, or every *.yaml / *.yml file of a directory (sorted, not recursive), each read while nothing changed. */
export async function readStableManifests(path: string, options: StableReadOptions = {}): Promise<ManifestText[]> {
  const fs = options.fs ?? nodeFs
  const attempts = options.attempts ?? 5
  const quiet = {ms: options.quietMs ?? 100, now: options.now ?? Date.now}
  let delayMs = options.retryDelayMs ?? 50
  for (let attempt = 1; ; attempt++) {
    const read = await readOnce(path, fs, quiet)
    if (Array.isArray(read)) return read
    if (attempt >= attempts) {
      throw new Error(`cannot read manifests from ${path}: ${read.changed} on each of ${attempts} reads; is something still writing it?`)
    }
    await (options.sleep ?? sleepMs)(delayMs)
    delayMs *= 2
  }
}

type Version = {size: number; mtimeMs: number; ino: number}

const sameVersion = (a: Version, b: Version) => a.size === b.size && a.mtimeMs === b.mtimeMs && a.ino === b.ino

/** Every file's text, or what changed while they were read. */
async function readOnce(path: string, fs: ManifestFs, quiet: {ms: number; now: () => number}): Promise<ManifestText[] | {changed: string}> {
  const listed = await manifestFiles(path, fs)
  const texts: ManifestText[] = []
  for (const file of listed.files) {
    let before: Version, bytes: Buffer, after: Version
    try {
      before = await fs.stat(file)
      bytes = await fs.readFile(file)
      after = await fs.stat(file)
    } catch (error) {
      // Gone between the listing and its read (deleted, or deleted and written anew): look again.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {changed: `${file} went away while it was read`}
      throw new Error(`cannot read manifests from ${file}: ${errorMessage(error)}`, {cause: error})
    }
    if (!sameVersion(before, after) || bytes.length !== after.size) return {changed: `${file} changed while it was read`}
    // A modification time ahead of this clock (a file server's skew) says nothing about the writer.
    const age = quiet.now() - after.mtimeMs
    if (age >= 0 && age < quiet.ms) return {changed: `${file} was modified less than ${quiet.ms} ms before it was read`}
    texts.push({file, text: bytes.toString('utf8')})
  }
  if (listed.directory && (await manifestFiles(path, fs)).files.join('\n') !== listed.files.join('\n')) {
    return {changed: `the files in ${path} changed while they were read`}
  }
  return texts
}

async function manifestFiles(path: string, fs: ManifestFs): Promise<{directory: boolean; files: string[]}> {
  let info
  try {
    info = await fs.stat(path)
  } catch (error) {
    throw new Error(`cannot read manifests from ${path}: ${errorMessage(error)}`, {cause: error})
  }
  if (!info.isDirectory()) return {directory: false, files: [path]}
  const names = (await fs.readdir(path)).filter((name) => MANIFEST.test(name)).sort()
  return {directory: true, files: names.map((name) => join(path, name))}
}

function errorMessage(error: unknown): string {
  return (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : String(error)
}
