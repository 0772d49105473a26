/**
 * Makes the code cache of the CLI script (src/cli/cli-script.ts) by running it once: a cache made
 * after the run also holds the functions the run compiled, not only the script's top level, so a
 * start compiles almost nothing. The run is a dry-run sync of the repository's example, which needs
 * neither root nor a cluster; V8 takes a cache only from its own version and flags, so the Node.js
 * that will run the script makes it.
 */
import {spawnSync} from 'node:child_process'
import {existsSync, rmSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** What the run does: a dry-run sync of one Mapping from a file. */
export const TRAINING_ARGS = ['sync', '--dry-run', '--from-file', join(ROOT, 'examples', 'echo-service.yaml'), '--assume-addresses', '198.18.0.10']

// Compiled as src/cli/cli-script.ts compiles it; the cache is written once the command has run, at exit.
// V8 takes a cache only under the flags that made it: the heap settings a sync makes at run time
// (src/lib/app/heap.ts) would be in this one's and every start would reject it, so the run makes none.
const TRAIN = `const {Script} = require('node:vm'); const fs = require('node:fs'); const {createRequire} = require('node:module'); const {pathToFileURL} = require('node:url')
const [script, cache, root, ...args] = process.argv.slice(1)
require('node:v8').setFlagsFromString = () => {}
process.argv = [process.argv[0], script, ...args]
const compiled = new Script(fs.readFileSync(script, 'utf8'), {filename: script})
process.on('exit', () => fs.writeFileSync(cache, compiled.createCachedData()))
compiled.runInThisContext()(createRequire(script), pathToFileURL(script).href, root)`

/**
 * Runs `script` with `node` on TRAINING_ARGS and writes its code cache to `cache`. A run that fails
 * (a config file of the build machine's in /etc/smartnat, say) still leaves a cache, of what it ran:
 * it is said, not fatal.
 */
export function makeCodeCache(node: string, script: string, cache: string): void {
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1'}
  // The builder's own settings would make another run of it, or none.
  for (const name of Object.keys(env)) if (['DEBUG', 'NODE_OPTIONS'].includes(name) || /^(SMARTNAT|SNCTRLR)_/.test(name)) delete env[name]
  rmSync(cache, {force: true})
  const run = spawnSync(node, ['-e', TRAIN, script, cache, ROOT, ...TRAINING_ARGS], {cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe']})
  if (!existsSync(cache)) throw new Error(`making the code cache of ${script}: the run wrote none (exit ${run.status})\n${run.stderr}`)
  if (run.status !== 0) console.warn(`code cache of ${script}: its run exited with ${run.status}; the cache holds what it ran\n${run.stderr}`)
}
