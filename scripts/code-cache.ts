/**
 * Makes the code cache of the CLI script (src/cli/cli-script.ts) by running it: a cache made after
 * the runs also holds the functions they compiled, not only the script's top level, so a start
 * compiles almost nothing. The runs, one after the other in one process, need neither root nor a
 * cluster: a dry-run sync of the repository's example, then `status` of an empty host whose tools
 * are stand-ins (TOOL_STUB) that print what a new network namespace's print. V8 takes a cache only
 * from its own version and flags, so the Node.js that will run the script makes it.
 */
import {spawnSync} from 'node:child_process'
import {chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {delimiter, join} from 'node:path'
import {fileURLToPath} from 'node:url'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** What the runs do: a dry-run sync of one Mapping from a file, then status of an empty host (last: it ends the process with its exit code). */
export function trainingRuns(scratch: string): string[][] {
  return [
    ['sync', '--dry-run', '--from-file', join(ROOT, 'examples', 'echo-service.yaml'), '--assume-addresses', '198.18.0.10'],
    ['status', '--from-file', join(scratch, 'empty'), '--lock-file', join(scratch, 'smartnat.lock')],
  ]
}

/** The tools status runs, answering as on an empty host (iproute2 6.1, iptables 1.8.9 nf_tables, ...). */
const TOOL_STUB = `#!/bin/sh
case "$(basename "$0") $*" in
  'ip -4 -j rule show') echo '[{"priority":0,"src":"all","table":"local"},{"priority":32766,"src":"all","table":"main"},{"priority":32767,"src":"all","table":"default"}]' ;;
  'ip -4 -j route show table all'|'ip -j -4 addr show') echo '[]' ;;
  'ip -V') echo 'ip utility, iproute2-6.1.0, libbpf 1.1.2' ;;
  'nft -j list chains') echo '{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}}]}' ;;
  'iptables --version') echo 'iptables v1.8.9 (nf_tables)' ;;
  'ipset --version') echo 'ipset v7.17, protocol version: 7' ;;
  'conntrack --version') echo 'conntrack v1.4.7 (conntrack-tools)' ;;
  'sysctl -n '*) for key in "$@"; do [ "$key" = -n ] || echo 0; done ;;
  'iptables-save -c'|'ipset save') ;;
  *) echo "no stand-in for $(basename "$0") $*" >&2; exit 1 ;;
esac
`
const STUBBED_TOOLS = ['ip', 'nft', 'iptables', 'iptables-save', 'ipset', 'conntrack', 'sysctl']

/** Writes into `dir` (made if missing) stand-ins for the tools status runs, answering as on a new network namespace. */
export function writeToolStandIns(dir: string): void {
  mkdirSync(dir, {recursive: true})
  for (const tool of STUBBED_TOOLS) {
    writeFileSync(join(dir, tool), TOOL_STUB)
    chmodSync(join(dir, tool), 0o755)
  }
}

/** A folder of stand-ins for the tools status runs, an empty folder of manifests, and room for a lock file. */
function makeScratch(): string {
  const scratch = mkdtempSync(join(tmpdir(), 'smartnat-code-cache-'))
  mkdirSync(join(scratch, 'empty'))
  writeToolStandIns(join(scratch, 'bin'))
  return scratch
}

// Compiled as src/cli/cli-script.ts compiles it; each run starts when the one before has left nothing
// to do, and the cache is written at exit. V8 takes a cache only under the flags that made it: the heap
// settings a sync makes at run time (src/lib/app/heap.ts) would be in this one's and every start would
// reject it, so the runs make none.
const TRAIN = `const {Script} = require('node:vm'); const fs = require('node:fs'); const {createRequire} = require('node:module'); const {pathToFileURL} = require('node:url')
const [script, cache, root, runs] = process.argv.slice(1)
require('node:v8').setFlagsFromString = () => {}
const compiled = new Script(fs.readFileSync(script, 'utf8'), {filename: script})
process.on('exit', () => fs.writeFileSync(cache, compiled.createCachedData()))
const pending = JSON.parse(runs)
const next = () => {
  process.argv = [process.argv[0], script, ...pending.shift()]
  compiled.runInThisContext()(createRequire(script), pathToFileURL(script).href, root)
}
process.on('beforeExit', () => { if (pending.length > 0) next() })
next()`

/** status's exit code on the stand-ins' empty host, as on a new network namespace's: problems (forwarding off). */
const STATUS_EXIT = 4

/**
 * Runs `script` with `node` on the training runs and writes its code cache to `cache`. A run that
 * fails (a config file of the build machine's in /etc/smartnat, say) still leaves a cache, of what
 * ran: it is said, not fatal.
 */
export function makeCodeCache(node: string, script: string, cache: string): void {
  const scratch = makeScratch()
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1', PATH: [join(scratch, 'bin'), process.env.PATH].join(delimiter)}
  // The builder's own settings would make another run of it, or none.
  for (const name of Object.keys(env)) if (['DEBUG', 'NODE_OPTIONS'].includes(name) || /^(SMARTNAT|SNCTRLR)_/.test(name)) delete env[name]
  rmSync(cache, {force: true})
  try {
    const runs = JSON.stringify(trainingRuns(scratch))
    const run = spawnSync(node, ['-e', TRAIN, script, cache, ROOT, runs], {cwd: ROOT, env, encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe']})
    if (!existsSync(cache)) throw new Error(`making the code cache of ${script}: the runs wrote none (exit ${run.status})\n${run.stderr}`)
    if (run.status !== STATUS_EXIT || run.stderr !== '') console.warn(`code cache of ${script}: the runs exited with ${run.status}; the cache holds what they ran\n${run.stderr}`)
  } finally {
    rmSync(scratch, {recursive: true, force: true})
  }
}
