/** What every smartnat command shares: the config file under the flags and environment. */
import type {Interfaces} from '@oclif/core'
import {Command} from '@oclif/core/command'
import * as Flags from '@oclif/core/flags'

type FlagOutput = Interfaces.OutputFlags<Interfaces.FlagInput>
type ArgOutput = Interfaces.OutputArgs<Interfaces.ArgInput>

import {DEFAULT_CONFIG_PATH, mergeConfig, readConfigFile, type ConfigurableFlag} from './config.js'

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

  /** Parses flags and arguments, then fills unset flags from the config file. */
  protected async parseWithConfig<F extends FlagOutput, B extends FlagOutput, A extends ArgOutput>(
    options: Interfaces.Input<F, B, A>,
  ): Promise<Interfaces.ParserOutput<F, B, A>> {
    const parsed = await this.parse(options)
    const configFlag = parsed.flags as {config?: string}
    const path = configFlag.config ?? DEFAULT_CONFIG_PATH
    const explicit = parsed.metadata.flags.config?.setFromDefault !== true
    const file = await readConfigFile(path, explicit).catch((error: Error) => this.error(error.message, {exit: 2}))
    const definitions: Record<string, ConfigurableFlag> = {}
    for (const [name, flag] of Object.entries(options.flags ?? {})) {
      const kind = flag.type === 'boolean' ? 'boolean' : isInteger(flag) ? 'integer' : 'string'
      definitions[name] = {kind, ...('options' in flag && flag.options ? {options: flag.options} : {})}
    }
    const fromDefault = (name: string) =>
      (parsed.flags as Record<string, unknown>)[name] === undefined || parsed.metadata.flags[name]?.setFromDefault === true
    try {
      const flags = mergeConfig(path, file, parsed.flags as Record<string, unknown>, definitions, fromDefault)
      return {...parsed, flags: flags as typeof parsed.flags}
    } catch (error) {
      this.error((error as Error).message, {exit: 2})
    }
  }
}

// oclif integer flags carry their parser; the help value tells them apart from string options.
function isInteger(flag: {type: string; parse?: unknown; helpValue?: unknown; default?: unknown}): boolean {
  return flag.type === 'option' && typeof flag.default === 'number'
}
