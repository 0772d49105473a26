/**
 * A small file of smartnat's own replaced whole (the tool versions, the reads kept for status):
 * written to a file of its own beside it and renamed over it, so that a reader never sees half of
 * it. Node's own node:fs only: the CLI's entry bundles this with read-ahead.ts.
 */
import {dirname} from 'node:path'

export interface WholeFileOptions {
  mode: number
  /** Makes the directory (0755, as the lock does) when missing. */
  makeDirectory: boolean
}

/** Replaces `path` with `text`; false, and nothing left behind, when it cannot be written. */
export function replaceWholeFile(path: string, text: string, options: WholeFileOptions): boolean {
  const {mkdirSync, renameSync, rmSync, writeFileSync} = process.getBuiltinModule('node:fs')
  const temporary = `${path}.${process.pid}.tmp`
  try {
    if (options.makeDirectory) mkdirSync(dirname(path), {recursive: true, mode: 0o755})
    writeFileSync(temporary, text, {mode: options.mode})
    renameSync(temporary, path)
    return true
  } catch {
    try {
      rmSync(temporary, {force: true})
    } catch {
      // Not even that: a directory not ours, or no directory.
    }
    return false
  }
}
