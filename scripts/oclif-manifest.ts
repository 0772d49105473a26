/**
 * Writes oclif.manifest.json for the built CLI (the last step of `npm run build`): with it, bin/run.js
 * learns every command's flags and help without importing them, and imports only the command run.
 * It describes dist/, so it is written after tsc; bin/dev.js and the tests ignore it (bin/source-config.js).
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {fileURLToPath} from 'node:url'

import {Plugin} from '@oclif/core'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

// In development or test mode oclif would describe src/commands; the package runs dist/commands.
delete process.env.NODE_ENV
const plugin = new Plugin({root: ROOT, isRoot: true, ignoreManifest: true, errorOnManifestCreate: true, respectNoCacheDefault: true})
await plugin.load()
writeFileSync(join(ROOT, 'oclif.manifest.json'), `${JSON.stringify(plugin.manifest, null, 2)}\n`)
