/** What every smartnat command shares: the config file under the flags and environment, and the Go controller's SNCTRLR_* settings. */
import type {Interfaces} from '@oclif/core'
import {Command} from '@oclif/core/command'
import {Config} from '@oclif/core/config'
import * as Flags from '@oclif/core/flags'

type FlagOutput = Interfaces.OutputFlags<Interfaces.FlagInput>
type ArgOutput = Interfaces.OutputArgs<Interfaces.ArgInput>

import {DEFAULT_CONFIG_PATH, mergeConfig, readConfigFile, type ConfigurableFlag} from './config.js'
import {readLegacySettings, unusedWarning, type LegacySettings} from './legacy-env.js'

export abstract class SmartnatCommand extends Command {
  static override baseFlags = {
    config: Flags.string({
      summary: 'YAML file with option values (flags and environment variables take precedence).',
      default: DEFAULT_CONFIG_PATH,
      env: 'SMARTNAT_CONFIG',
      helpGroup: 'GLOBAL',
      helpValue: 'PATH',
    }),
  }

  /**
   * oclif's Command.run, but with a Config this copy of oclif loaded (what oclif's run hands over) as
   * it is: oclif's loads it again, in case it came from another copy of oclif, which cost a start
   * about 5 ms (a second debug logger, the theme file read again, the root plugin set up again).
   */
  static override async run<T extends Command>(
    this: new (argv: string[], config: Config) => T,
    argv: string[] = process.argv.slice(2),
    opts?: Interfaces.LoadOptions,
  ): Promise<ReturnType<T['run']>> {
    if (!(opts instanceof Config)) return Command.run.call(this, argv, opts) as Promise<ReturnType<T['run']>>
    const command = new this(argv, opts)
    // As oclif's: a command class that no plugin named takes its class's name.
    if (!command.id) {
      const id = command.constructor.name.toLowerCase()
      command.id = id
      ;(command.constructor as typeof Command).id = id
    }
    return (command as unknown as {_run(): Promise<ReturnType<T['run']>>})._run()
  }

  /**
   * `--json` output as JSON.stringify prints it, colored only on a terminal. oclif's colorizer cuts
   * every output into tokens, colors or not: for the 3 MB report of a sync of 10,000 Mappings that
   * took about 40 MB of memory.
   */
  override logJson(json: unknown): void {
    if (process.stdout.isTTY) {
      super.logJson(json)
      return
    }
    process.stdout.write(`${JSON.stringify(json, null, 2)}\n`)
  }

  /**
   * Parses flags and arguments, then fills what the command line left unset: SNCTRLR_* option variables
   * (legacy-env.ts) as the environment, then the config file, then the Go controller's carried-over
   * settings. A value that cannot be read stops the command with code 2; SNCTRLR_* variables smartnat
   * ignores are named in one warning, on stderr unless `onWarning` takes it.
   */
  protected async parseWithConfig<F extends FlagOutput, B extends FlagOutput, A extends ArgOutput>(
    options: Interfaces.Input<F, B, A>,
    onWarning: (text: string) => void = (text) => this.warn(text),
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    let legacy: LegacySettings
    try {
      // Before oclif reads the same variables with its own rules (any word but 1/true/y/yes is false, an empty value is unset).
      legacy = readLegacySettings(process.env, new Set(Object.keys(options.flags ?? {})))
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
    const parsed = await this.parse(options)
    const warning = unusedWarning(legacy.unused)
    if (warning) onWarning(warning)
    const configFlag = parsed.flags as {config?: string}
    const path = configFlag.config ?? DEFAULT_CONFIG_PATH
    const explicit = parsed.metadata.flags.config?.setFromDefault !== true
    const file = await readConfigFile(path, explicit).catch((error: Error) => this.error(error.message, {exit: 2}))
    const definitions: Record<string, ConfigurableFlag> = {}
    for (const [name, flag] of Object.entries(options.flags ?? {})) {
      const kind = flag.type === 'boolean' ? 'boolean' : isInteger(flag) ? 'integer' : 'string'
      definitions[name] = {kind, ...('options' in flag && flag.options ? {options: flag.options} : {})}
    }
    const given = new Set(parsed.raw.flatMap((token) => (token.type === 'flag' ? [token.flag] : [])))
    const flags = {...(parsed.flags as Record<string, unknown>)}
    for (const [name, value] of Object.entries(legacy.environment)) if (!given.has(name)) flags[name] = value
    const fromDefault = (name: string) =>
      !given.has(name) && !(name in legacy.environment) && (flags[name] === undefined || parsed.metadata.flags[name]?.setFromDefault === true)
    try {
      const merged = mergeConfig(path, file, flags, definitions, fromDefault)
      for (const [name, value] of Object.entries(legacy.carriedOver)) if (fromDefault(name) && !(name in file)) merged[name] = value
      return {...parsed, flags: merged as typeof parsed.flags}
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
  }
}

// oclif integer flags carry their parser; the help value tells them apart from string options.
function isInteger(flag: {type: string; parse?: unknown; helpValue?: unknown; default?: unknown}): boolean {
  return flag.type === 'option' && typeof flag.default === 'number'
}
