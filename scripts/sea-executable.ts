/**
 * Makes the single executable dist-sea/smartnat-linux-ARCH (a step of `npm run build:sea`, after
 * `scripts/bundle.ts --sea`): Node.js's single executable application, a copy of a Node.js binary
 * with a blob injected (postject) so that a host needs no Node.js of its own. The blob holds the
 * entry (dist-sea/start.cjs) with its code cache, and the rest of the CLI (dist-sea/smartnat.cjs)
 * with its own as assets (src/cli/sea-loader.ts). The binary is the running node (`--node PATH` for
 * another that runs on this machine): it makes the blob and the caches, and must carry the SEA fuse,
 * as the official builds do.
 */
import {execFileSync} from 'node:child_process'
import {chmodSync, copyFileSync, readFileSync, writeFileSync} from 'node:fs'
import {arch} from 'node:os'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'
import {parseArgs} from 'node:util'

import {CLI_CACHE, CLI_MAP, CLI_SCRIPT} from '../src/cli/cli-script.js'
import {makeCodeCache} from './code-cache.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))
const SEA_DIST = join(ROOT, 'dist-sea')
// The sentinel Node.js looks for to know a blob was injected (the same in every release that has SEA).
const FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2'
const POSTJECT = join(ROOT, 'node_modules', 'postject', 'dist', 'cli.js')

const {values} = parseArgs({options: {node: {type: 'string', default: process.execPath}}})
const node = values.node!

if (!readFileSync(node).includes(`${FUSE}:0`)) throw new Error(`${node} cannot become a single executable: it has no ${FUSE} (build from an official Node.js binary, --node PATH)`)

// The CLI's code cache, made by the binary that will run it (V8 takes only its own), as src/cli/sea-loader.ts compiles it.
const cli = join(SEA_DIST, CLI_SCRIPT)
const cache = join(SEA_DIST, CLI_CACHE)
makeCodeCache(node, cli, cache)

const config = join(SEA_DIST, 'sea-config.json')
const blob = join(SEA_DIST, 'smartnat.blob')
// The entry's code cache spares V8 compiling it at every start; the warning would reach every command's stderr.
writeFileSync(
  config,
  JSON.stringify({main: join(SEA_DIST, 'start.cjs'), output: blob, disableExperimentalSEAWarning: true, useCodeCache: true, assets: {[CLI_SCRIPT]: cli, [CLI_CACHE]: cache, [CLI_MAP]: `${cli}.map`}}),
)
execFileSync(node, ['--experimental-sea-config', config], {stdio: ['ignore', 'ignore', 'inherit']})

const executable = join(SEA_DIST, `smartnat-linux-${arch()}`)
copyFileSync(node, executable)
chmodSync(executable, 0o755)
execFileSync(process.execPath, [POSTJECT, executable, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', FUSE], {stdio: ['ignore', 'ignore', 'inherit']})
console.log(executable)
