/**
 * What `scripts/bundle.ts --sea` builds into the single executable in place of the package's files:
 * package.json's name and version and the rendered help for the entry; package.json, oclif's
 * manifest and every command for each oclif plugin (the root first) for the CLI.
 */
declare module 'smartnat-sea:help' {
  import type {PackageInfo, RenderedHelp} from './fast-start.js'

  export const PACKAGE: PackageInfo
  export const RENDERED_HELP: RenderedHelp
}

declare module 'smartnat-sea:plugins' {
  import type {Command, Interfaces} from '@oclif/core'

  /** One oclif plugin: its package.json, its manifest, and an import of each command by id. */
  export interface EmbeddedPlugin {
    pjson: Interfaces.PJSON
    manifest: Interfaces.Manifest
    commands: Record<string, () => Promise<{default: Command.Class}>>
  }

  export const PLUGINS: EmbeddedPlugin[]
}
