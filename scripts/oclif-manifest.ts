/**
 * Writes oclif.manifest.json for the built CLI (the last step of `npm run build`): with it, bin/run.cjs
 * learns every command's flags and help without importing them, and imports only the command run.
 * It describes dist/, so it is written after the bundle; bin/dev.js and the tests ignore it (bin/source-config.js).
 * Then renders every command's help with oclif into dist/help.json, for bin/run.cjs to print `--help`
 * without loading oclif (src/cli/fast-start.ts).
 */
import {spawnSync} from 'node:child_process'
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath, pathToFileURL} from 'node:url'

import {Config, Plugin} from '@oclif/core'

import {RENDERED_HELP_FILE, type RenderedHelp} from '../src/cli/fast-start.js'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

// In development or test mode oclif would describe src/commands; the package runs dist/commands.
delete process.env.NODE_ENV
const plugin = new Plugin({root: ROOT, isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true})
await plugin.load()
writeFileSync(join(ROOT, 'oclif.manifest.json'), `${JSON.stringify(plugin.manifest, null, 2)}\n`)

/** What oclif prints for `smartnat ARGS --help` to a pipe, without colour: run by oclif alone, as bin/run.cjs would without its short cut. */
function oclifHelp(args: string[]): string {
  const env: NodeJS.ProcessEnv = {...process.env, NO_COLOR: '1'}
  delete env.OCLIF_COLUMNS
  const script = `import {execute} from '@oclif/core/execute'\nawait execute({dir: ${JSON.stringify(pathToFileURL(join(ROOT, 'bin', 'run.cjs')).href)}, args: ${JSON.stringify(args)}})`
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], {cwd: ROOT, env, encoding: 'utf8'})
  if (result.status !== 0) throw new Error(`rendering smartnat ${args.join(' ')}: exit ${result.status}\n${result.stderr}`)
  return result.stdout
}

const config = await Config.load({root: ROOT})
const rendered: RenderedHelp = {help: {'': oclifHelp(['--help'])}}
for (const id of config.commandIDs) if (!id.includes(':')) rendered.help[id] = oclifHelp([id, '--help'])
writeFileSync(join(ROOT, 'dist', RENDERED_HELP_FILE), `${JSON.stringify(rendered, null, 2)}\n`)
