/**
 * The daemon's options from a YAML file (`/etc/smartnat/config.yaml`, or `--config PATH`).
 * Precedence: command-line flags, then environment variables, then the file, then defaults.
 */
import {readFileSync} from 'node:fs'
import {parseYaml} from '../lib/source/yaml.js'

export {DEFAULT_CONFIG_PATH} from './config-path.js'

/** Keys a config file may hold: the long-lived options of every command, by flag name. */
export const CONFIG_KEYS = [
  'backend',
  'forward-accept',
  'interfaces',
  'default-gw-interface',
  'gw-offset',
  'masquerade',
  'cluster-address',
  'floating-addresses',
  'conntrackd-config',
  'snat',
  'max-ports-per-mapping',
  'command-timeout',
  'from-file',
  'kubeconfig',
  'context',
  'api-timeout',
  'default-load-balancer',
  'dynamic-ports',
  'lease-namespace',
  'lease-duration',
  'lock-file',
  'lock-wait',
  'resync',
  'metrics-addr',
  'log-level',
  'flush-on-exit',
  'max-removal',
  'removal-delay',
] as const

type FlagKind = 'boolean' | 'integer' | 'string'

export interface ConfigurableFlag {
  kind: FlagKind
  options?: readonly string[]
}

/** Reads the file; a missing default file means "no file", a missing explicit one is an error. */
export async function readConfigFile(path: string, explicit: boolean): Promise<Record<string, unknown>> {
  let text: string
  try {
    // Read at a command's start, before anything else runs: node:fs/promises would cost loading it (about 2 ms).
    text = readFileSync(path, 'utf8')
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !explicit) return {}
    throw new Error(`config ${path}: cannot read it: ${(error as Error).message}`, {cause: error})
  }
  let value: unknown
  try {
    value = parseYaml(text, path)
  } catch (error) {
    throw new Error(`config ${(error as Error).message}`, {cause: error})
  }
  if (value === null || value === undefined) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw new Error(`config ${path}: must be a mapping of option names to values`)
  const known = new Set<string>(CONFIG_KEYS)
  for (const key of Object.keys(value)) {
    if (!known.has(key)) throw new Error(`config ${path}: unknown key "${key}"; known keys: ${CONFIG_KEYS.join(', ')}`)
  }
  return value as Record<string, unknown>
}

/**
 * Fills flags that were neither given nor set from the environment with the file's values.
 * `fromDefault` names the flags whose value is only their default (or absent).
 */
export function mergeConfig(
  path: string,
  file: Record<string, unknown>,
  flags: Record<string, unknown>,
  definitions: Record<string, ConfigurableFlag>,
  fromDefault: (name: string) => boolean,
): Record<string, unknown> {
  const merged = {...flags}
  for (const [key, raw] of Object.entries(file)) {
    const definition = definitions[key]
    if (!definition || !fromDefault(key)) continue
    merged[key] = configValue(path, key, raw, definition)
  }
  return merged
}

function configValue(path: string, key: string, raw: unknown, definition: ConfigurableFlag): unknown {
  const fail = (what: string) => new Error(`config ${path}: ${key} must be ${what}, got ${JSON.stringify(raw)}`)
  switch (definition.kind) {
    case 'boolean': {
      if (typeof raw !== 'boolean') throw fail('true or false')
      return raw
    }
    case 'integer': {
      if (typeof raw !== 'number' || !Number.isInteger(raw)) throw fail('an integer')
      return raw
    }
    case 'string': {
      if (typeof raw !== 'string' && typeof raw !== 'number') throw fail('a string')
      const text = String(raw)
      if (definition.options && !definition.options.includes(text)) throw fail(`one of ${definition.options.join(', ')}`)
      return text
    }
  }
}
