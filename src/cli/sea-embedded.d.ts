/**
 * What `scripts/bundle.ts --sea` builds into the single executable in place of the package's files:
 * package.json, oclif's manifest, the rendered help and every command, for the root and each plugin.
 */
declare module 'smartnat-sea:embedded' {
  import type {Command, Interfaces} from '@oclif/core'

  import type {RenderedHelp} from './fast-start.js'

  /** One oclif plugin (the root first): its package.json, its manifest, and an import of each command by id. */
  export interface EmbeddedPlugin {
    pjson: Interfaces.PJSON
    manifest: Interfaces.Manifest
    commands: Record<string, () => Promise<{default: Command.Class}>>
  }

  export const PLUGINS: EmbeddedPlugin[]
  export const RENDERED_HELP: RenderedHelp
}
