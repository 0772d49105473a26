/** The package's CLI script (dist/cli/smartnat.cjs, src/cli/cli-script.ts) and its code cache, read from beside the entry. */
import {CLI_CACHE, CLI_MAP, CLI_SCRIPT, compileCliScript} from './cli-script.js'
import {mapStackTraces} from './mapped-stack.js'

/** Runs the command line through the CLI script and returns true, or returns false when the build made none (tsc alone). */
export function runPackageScript(): boolean {
  // As CommonJS, as in fast-start.ts, and only here: --version and --help never run the script.
  const {createRequire} = process.getBuiltinModule('node:module')
  const {fileURLToPath, pathToFileURL} = process.getBuiltinModule('node:url')
  const file = fileURLToPath(new URL(`./${CLI_SCRIPT}`, import.meta.url))
  const read = readBothIfBuilt(file, fileURLToPath(new URL(`./${CLI_CACHE}`, import.meta.url)))
  if (!read) return false
  // The source is V8's to keep anyway, for the functions it compiles later.
  const {source} = read
  const map = () => process.getBuiltinModule('node:fs').readFileSync(fileURLToPath(new URL(`./${CLI_MAP}`, import.meta.url)), 'utf8')
  mapStackTraces(file, {map, script: () => source})
  // This entry is dist/cli/start.cjs: the package root is two directories up.
  compileCliScript(read.source, file, read.cache)(createRequire(file), pathToFileURL(file).href, fileURLToPath(new URL('../..', import.meta.url)))
  return true
}

/**
 * The script's text and its code cache, read through one buffer: the script is copied out of it into
 * a string (the build made it ASCII-only, scripts/ascii-only.ts, so read as latin1 it is copied, not
 * decoded as UTF-8), then the cache is read into the same memory. Every page of a buffer is a page
 * fault the first time it is written, and they are slow here: a second buffer of the cache's size
 * cost about 3 ms of every start (docs/benchmarks.md, "Start-up"). Undefined when the build made no
 * script (tsc alone); without a cache the script compiles from its source.
 */
function readBothIfBuilt(scriptFile: string, cacheFile: string): {source: string; cache?: Buffer} | undefined {
  const {closeSync, fstatSync, openSync, readSync} = process.getBuiltinModule('node:fs')
  const open = (file: string) => {
    try {
      return openSync(file, 'r')
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
      throw error
    }
  }
  const script = open(scriptFile)
  if (script === undefined) return undefined
  const cache = open(cacheFile)
  try {
    const scriptSize = fstatSync(script).size
    const cacheSize = cache === undefined ? 0 : fstatSync(cache).size
    const buffer = Buffer.allocUnsafeSlow(Math.max(scriptSize, cacheSize))
    const readAll = (fd: number, size: number) => {
      let done = 0
      while (done < size) {
        const n = readSync(fd, buffer, done, size - done, done)
        if (n === 0) break
        done += n
      }
      return done
    }
    const source = buffer.toString('latin1', 0, readAll(script, scriptSize))
    if (cache === undefined) return {source}
    return {source, cache: buffer.subarray(0, readAll(cache, cacheSize))}
  } finally {
    closeSync(script)
    if (cache !== undefined) closeSync(cache)
  }
}
