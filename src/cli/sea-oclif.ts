/** oclif inside the CLI script (src/cli/cli-script.ts): plugins made from what the build embedded, commands imported from the bundle. */
// oclif's modules, not its index: the index checks the Node.js version with semver at every start.
import type {Command} from '@oclif/core/command'
import {Config, Plugin} from '@oclif/core/config'
import {flush} from '@oclif/core/flush'
import {handle} from '@oclif/core/handle'
import type {Logger} from '@oclif/core/interfaces'
import {run} from '@oclif/core/run'
import type {EmbeddedPlugin} from 'smartnat-sea:plugins'

/** An oclif plugin that reads nothing from disk: oclif's own loads package.json, the manifest and commands by path. */
class BuiltInPlugin extends Plugin {
  constructor(
    private readonly embedded: EmbeddedPlugin,
    root: string,
    isRoot: boolean,
  ) {
    super({root, isRoot, pjson: embedded.pjson, type: 'core'})
  }

  override async load(): Promise<void> {
    const {pjson, manifest} = this.embedded
    this.type = 'core'
    this.isRoot = this.options.isRoot ?? false
    this.root = this.options.root
    this.pjson = pjson
    this.name = pjson.name
    this.alias = pjson.name
    this.version = pjson.version
    this.moduleType = 'module'
    this.valid = true
    // Only plugin-autocomplete's plugins:postinstall hooks exist, and the executable installs no plugins.
    this.hooks = {}
    this.manifest = manifest
    this.commands = Object.entries(manifest.commands)
      .map(([id, command]) => ({...command, load: async () => this.findCommand(id, {must: true}), pluginAlias: this.alias, pluginType: this.type}))
      // oclif's own sorts with localeCompare, whose first call loads ICU's collation: 11-15 ms of
      // every start. Command ids are ASCII words (`autocomplete:create`), which both order alike.
      .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
  }

  override async findCommand(id: string, opts: {must: true}): Promise<Command.Class>
  override async findCommand(id: string, opts?: {must: boolean}): Promise<Command.Class | undefined>
  override async findCommand(id: string, opts: {must?: boolean} = {}): Promise<Command.Class | undefined> {
    const load = this.embedded.commands[id]
    if (load) return (await load()).default
    if (opts.must) throw new Error(`command ${id} is not built into ${this.name}`)
    return undefined
  }
}

/** Runs the command line through oclif from the package root given: the package's, or the executable's directory. */
export async function runEmbeddedOclif(plugins: EmbeddedPlugin[], root: string): Promise<void> {
  // smartnat has no theme. oclif's Config would look for the user's (~/.config/smartnat/theme.json) at
  // every start, the first file it reads through node:fs/promises: about 3 ms of a dry-run sync's CPU.
  Config.prototype.loadTheme = async () => undefined
  const loaded = new Map<string, Plugin>()
  for (const [index, embedded] of plugins.entries()) {
    const plugin = new BuiltInPlugin(embedded, root, index === 0)
    await plugin.load()
    loaded.set(plugin.name, plugin)
  }
  // Options, not a loaded Config: oclif loads a Config it is given once more.
  // Without DEBUG oclif's logger, the `debug` package, prints nothing; loading it costs about 2.5 ms.
  const logger = process.env.DEBUG ? undefined : silentLogger('oclif')
  // What oclif's execute() does, but for a command's exit code (this.exit): oclif's handler prints
  // nothing for it, yet first renders the error and cleans its stack, about 5 ms of a status's start.
  try {
    await run(process.argv.slice(2), {root, plugins: loaded, pjson: plugins[0]!.pjson, logger})
  } catch (error) {
    if (isExitCode(error)) process.exit(error.oclif.exit)
    await handle(error as Error)
    return
  }
  void flush()
}

/** oclif's ExitError, thrown by Command.exit(): nothing to print, only the code. */
function isExitCode(error: unknown): error is {oclif: {exit: number}} {
  const {code, oclif} = error as {code?: unknown; oclif?: {exit?: unknown}}
  return code === 'EEXIT' && typeof oclif?.exit === 'number'
}

/** An oclif logger that prints nothing, as oclif's own does when DEBUG is unset. */
export function silentLogger(namespace: string): Logger {
  const ignore = (): void => {}
  return {namespace, child: (child) => silentLogger(`${namespace}:${child}`), debug: ignore, error: ignore, info: ignore, trace: ignore, warn: ignore}
}
