/** The package's CLI script (dist/cli/smartnat.cjs, src/cli/cli-script.ts) and its code cache, read from beside the entry. */
import {CLI_CACHE, CLI_SCRIPT, compileCliScript} from './cli-script.js'

/** Runs the command line through the CLI script and returns true, or returns false when the build made none (tsc alone). */
export function runPackageScript(): boolean {
  // As CommonJS, as in fast-start.ts, and only here: --version and --help never run the script.
  const {createRequire} = process.getBuiltinModule('node:module')
  const {fileURLToPath, pathToFileURL} = process.getBuiltinModule('node:url')
  const file = fileURLToPath(new URL(`./${CLI_SCRIPT}`, import.meta.url))
  // The build made it ASCII-only (scripts/ascii-only.ts): read as latin1, it is copied, not decoded as UTF-8.
  const source = readIfBuilt(file, 'latin1')
  if (source === undefined) return false
  const cache = readIfBuilt(fileURLToPath(new URL(`./${CLI_CACHE}`, import.meta.url)))
  // This entry is dist/cli/start.cjs: the package root is two directories up.
  compileCliScript(source, file, cache)(createRequire(file), pathToFileURL(file).href, fileURLToPath(new URL('../..', import.meta.url)))
  return true
}

function readIfBuilt(file: string): Buffer | undefined
function readIfBuilt(file: string, encoding: 'latin1'): string | undefined
function readIfBuilt(file: string, encoding?: 'latin1'): Buffer | string | undefined {
  const {readFileSync} = process.getBuiltinModule('node:fs')
  try {
    return encoding ? readFileSync(file, encoding) : readFileSync(file)
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}
