/**
 * The whole CLI as one CommonJS script (scripts/bundle.ts: dist/cli/smartnat.cjs for the package,
 * dist-sea/smartnat.cjs for the single executable): oclif over the plugins the build embedded, so it
 * neither looks for plugins nor reads their manifests, compiled with the code cache the build made
 * by running it once. Node.js 20 keeps no code cache for ES modules: compiling the bundle's chunks
 * at every start cost more than the rest of a dry-run sync (docs/benchmarks.md, "Start-up").
 */

/** The script's file name, its code cache's and its source map's, wherever they are kept. */
export const CLI_SCRIPT = 'smartnat.cjs'
export const CLI_CACHE = 'smartnat.cache'
export const CLI_MAP = 'smartnat.cjs.map'

/** What the script evaluates to: `(function (require, scriptUrl, root) {...})`; it runs the command line when called. */
export type CliScript = (require: (id: string) => unknown, scriptUrl: string, root: string) => void

/** Compiles the script, from its code cache when V8 takes it (the same V8 and flags made it), else from its source. */
export function compileCliScript(source: string, filename: string, cachedData?: Buffer): CliScript {
  // Here, not at the top: --version and --help load this module and never compile the script.
  const {Script} = process.getBuiltinModule('node:vm')
  return new Script(source, {filename, ...(cachedData ? {cachedData} : {})}).runInThisContext() as CliScript
}
