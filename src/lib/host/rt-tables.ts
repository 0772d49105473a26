/** The iproute2 file naming routing tables, where the Go controller registered one table per interface. */
import {fsPromises} from './fs-promises.js'

/** Where iproute2 reads table names from, and where the Go controller appended its own. */
export const DEFAULT_RT_TABLES = '/etc/iproute2/rt_tables'

/** The file's text; empty when it does not exist (nothing was ever registered in it). */
export async function readRtTables(path: string): Promise<string> {
  try {
    return await fsPromises().readFile(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return ''
    throw new Error(`reading ${path}: ${(error as Error).message}`, {cause: error})
  }
}

/** Replaces the file's text at once (a reader sees the old file or the new one), keeping its mode. */
export async function writeRtTables(path: string, text: string): Promise<void> {
  const temporary = `${path}.smartnat-${process.pid}`
  try {
    const {mode} = await fsPromises().stat(path)
    await fsPromises().writeFile(temporary, text, {mode})
    await fsPromises().rename(temporary, path)
  } catch (error) {
    throw new Error(`rewriting ${path}: ${(error as Error).message}`, {cause: error})
  }
}
