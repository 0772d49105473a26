/**
 * Runs the CLI bundled for the single executable (src/cli/sea-cli.ts, an asset of the executable)
 * with the code cache the build made for it. Apart from the entry, so that `--version` and `--help`
 * do not pay for reading the whole CLI: V8 deserializes a script's code cache in full before its
 * first line runs.
 */
import {createRequire, isBuiltin} from 'node:module'
import {getAsset} from 'node:sea'
import {Script} from 'node:vm'

/** The asset names scripts/sea-executable.ts gives the bundle, `(function (require) {...})`, and its code cache. */
export const CLI_ASSET = 'smartnat.cjs'
export const CLI_CACHE_ASSET = 'smartnat.cache'

/** Node's own modules only; a package probing for an optional one (ws for bufferutil) gets what a missing module gives. */
function builtInRequire(): (id: string) => unknown {
  const load = createRequire(process.execPath)
  return (id) => {
    if (isBuiltin(id)) return load(id)
    throw Object.assign(new Error(`Cannot find module '${id}': not built into the executable`), {code: 'MODULE_NOT_FOUND'})
  }
}

/** Compiles the bundled CLI (from the code cache) and runs it on the command line. */
export function runBundledCli(): void {
  const script = new Script(getAsset(CLI_ASSET, 'utf8'), {filename: CLI_ASSET, cachedData: Buffer.from(getAsset(CLI_CACHE_ASSET))})
  ;(script.runInThisContext() as (require: (id: string) => unknown) => void)(builtInRequire())
}
