/**
 * oclif's configuration for running smartnat from its TypeScript sources (bin/dev.js, the command
 * tests). oclif reads oclif.manifest.json whenever the package root holds one, and then takes every
 * command's flags and help from it and imports the command from dist/: after `npm run build` that
 * would run yesterday's build instead of the sources. Here the root plugin ignores the manifest.
 */
import {fileURLToPath} from 'node:url'

import {Config, Plugin} from '@oclif/core'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

/** Loads smartnat's oclif Config from src/ (through tsx), never from oclif.manifest.json. */
export async function sourceConfig() {
  // oclif maps dist/ to src/ only outside production (NODE_ENV development or test), and only while loading.
  const nodeEnv = process.env.NODE_ENV
  process.env.NODE_ENV ??= 'development'
  try {
    const root = new Plugin({root: ROOT, isRoot: true, ignoreManifest: true})
    await root.load()
    const config = new Config({root: ROOT, plugins: new Map([[root.name, root]])})
    await config.load()
    // Given plugins, oclif loads no others: load the package's own (autocomplete) as it would.
    await config.loadPluginsAndCommands({force: true})
    return config
  } finally {
    if (nodeEnv === undefined) delete process.env.NODE_ENV
  }
}
