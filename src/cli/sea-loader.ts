/**
 * Runs the CLI script (src/cli/cli-script.ts), an asset of the single executable, with the code
 * cache the build made for it. Apart from the entry, so that `--version` and `--help` do not pay
 * for reading the whole CLI: V8 deserializes a script's code cache in full before its first line runs.
 */
import {createRequire, isBuiltin} from 'node:module'
import {dirname} from 'node:path'
import {getAsset} from 'node:sea'
import {pathToFileURL} from 'node:url'

import {CLI_CACHE, CLI_MAP, CLI_SCRIPT, compileCliScript} from './cli-script.js'
import {mapStackTraces} from './mapped-stack.js'

/** Node's own modules only; a package probing for an optional one (ws for bufferutil) gets what a missing module gives. */
function builtInRequire(): (id: string) => unknown {
  const load = createRequire(process.execPath)
  return (id) => {
    if (isBuiltin(id)) return load(id)
    throw Object.assign(new Error(`Cannot find module '${id}': not built into the executable`), {code: 'MODULE_NOT_FOUND'})
  }
}

/** Compiles the bundled CLI (from the code cache) and runs it on the command line; the executable's directory is the package root. */
export function runBundledCli(): void {
  // The map's sources are relative to dist-sea/, where the build wrote the script: frames name src/... as in the repository.
  mapStackTraces(CLI_SCRIPT, {map: () => getAsset(CLI_MAP, 'utf8'), script: () => getAsset(CLI_SCRIPT, 'utf8')}, 'dist-sea')
  const run = compileCliScript(getAsset(CLI_SCRIPT, 'utf8'), CLI_SCRIPT, Buffer.from(getAsset(CLI_CACHE)))
  run(builtInRequire(), pathToFileURL(process.execPath).href, dirname(process.execPath))
}
