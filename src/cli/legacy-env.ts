/**
 * The Go controller's SNCTRLR_* environment variables, all read here. Those that name one of
 * smartnat's options (flags.ts declares them) are environment variables like any other: under the
 * command line, over the config file. The Go controller's other settings (debug, autorefresh, monitor)
 * are carried over under both, because smartnat's own option is shaped differently (a log level, a
 * duration, one address) and an operator who sets that option means it. Values are read as the Go
 * controller read them, except that what it silently replaced by a default or by 0 is refused here.
 */

import {DEFAULT_INTERFACES_PATTERN} from '../lib/host/interfaces.js'

type Environment = Record<string, string | undefined>

const PREFIX = 'SNCTRLR_'

/** What Go's strconv.ParseBool accepts, and nothing else. */
const GO_TRUE = ['1', 't', 'T', 'TRUE', 'true', 'True']
const GO_FALSE = ['0', 'f', 'F', 'FALSE', 'false', 'False']

/** Where the Go controller served /healthcheck unless told otherwise. */
const GO_MONITOR_IP = '127.0.0.1'
const GO_MONITOR_PORT = 8080

type Reader = (name: string, text: string) => unknown

/** Variables that set one of smartnat's options, with the value of that option's flag. */
const OPTION_VARIABLES: Record<string, {flag: string; read: Reader}> = {
  SNCTRLR_INTERFACES_PATTERN: {flag: 'interfaces', read: pattern},
  SNCTRLR_IPTABLES_TIMEOUT_SEC: {flag: 'command-timeout', read: integer(1)},
  SNCTRLR_DEFAULT_GW_INTERFACE: {flag: 'default-gw-interface', read: (_name, text) => text},
  SNCTRLR_GW_ADDRESS_OFFSET: {flag: 'gw-offset', read: integer()},
  SNCTRLR_SETUP_MASQUERADE: {flag: 'masquerade', read: goBoolean},
  SNCTRLR_SETUP_SNAT: {flag: 'snat', read: goBoolean},
  SNCTRLR_MAX_PORTS_PER_MAPPING: {flag: 'max-ports-per-mapping', read: integer(1)},
}

/** The Go controller's settings that smartnat carries over onto an option of another shape. */
const CARRIED_VARIABLES = ['SNCTRLR_DEBUG_ENABLED', 'SNCTRLR_AUTOREFRESH_PERIOD_SEC', 'SNCTRLR_MONITOR_IP', 'SNCTRLR_MONITOR_PORT']

/** Every SNCTRLR_* variable smartnat reads. */
const LEGACY_VARIABLES: readonly string[] = [...Object.keys(OPTION_VARIABLES), ...CARRIED_VARIABLES]

/** The flag each option variable sets. */
export const LEGACY_OPTION_FLAGS: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(OPTION_VARIABLES).map(([name, {flag}]) => [name, flag]))

export interface LegacySettings {
  /** Flag values from the variables that name an option: they rank as the environment. */
  environment: Record<string, unknown>
  /** Flag values carried over from the Go controller's other settings: they rank under the config file. */
  carriedOver: Record<string, unknown>
  /** SNCTRLR_* variables set that smartnat does not read, sorted. */
  unused: string[]
}

/**
 * Reads the SNCTRLR_* variables of `env` for a command whose flags are `flags`; a variable whose flag
 * the command lacks is left unread. Throws an Error naming the variable when a value cannot be read.
 */
export function readLegacySettings(env: Environment, flags: ReadonlySet<string>): LegacySettings {
  const environment: Record<string, unknown> = {}
  for (const [name, {flag, read}] of Object.entries(OPTION_VARIABLES)) {
    const text = env[name]
    if (text === undefined || !flags.has(flag)) continue
    // An empty gateway interface is how an env file says "none", as the example file's commented line does.
    if (flag === 'default-gw-interface' && text === '') continue
    environment[flag] = read(name, text)
  }
  const carriedOver: Record<string, unknown> = {}
  if (flags.has('log-level') && env.SNCTRLR_DEBUG_ENABLED !== undefined && goBoolean('SNCTRLR_DEBUG_ENABLED', env.SNCTRLR_DEBUG_ENABLED)) {
    carriedOver['log-level'] = 'debug'
  }
  if (flags.has('resync') && env.SNCTRLR_AUTOREFRESH_PERIOD_SEC !== undefined) {
    carriedOver.resync = `${integer(1)('SNCTRLR_AUTOREFRESH_PERIOD_SEC', env.SNCTRLR_AUTOREFRESH_PERIOD_SEC)}s`
  }
  if (flags.has('metrics-addr') && (env.SNCTRLR_MONITOR_IP !== undefined || env.SNCTRLR_MONITOR_PORT !== undefined)) {
    carriedOver['metrics-addr'] = monitorAddress(env.SNCTRLR_MONITOR_IP, env.SNCTRLR_MONITOR_PORT)
  }
  const known = new Set(LEGACY_VARIABLES)
  const unused = Object.keys(env).filter((name) => name.startsWith(PREFIX) && !known.has(name)).sort()
  return {environment, carriedOver, unused}
}

/** The one warning naming the SNCTRLR_* variables smartnat ignores, or undefined when there are none. */
export function unusedWarning(unused: readonly string[]): string | undefined {
  if (unused.length === 0) return undefined
  return `ignored: ${unused.join(', ')} ${unused.length === 1 ? 'is' : 'are'} set but smartnat does not use ${unused.length === 1 ? 'it' : 'them'} (see "Settings carried over from the Go controller" in docs/operations.md)`
}

/** Go's strconv.ParseBool, refusing what it refuses, with the variable named. */
export function goBoolean(name: string, text: string): boolean {
  if (GO_TRUE.includes(text)) return true
  if (GO_FALSE.includes(text)) return false
  throw new Error(`${name}=${JSON.stringify(text)}: must be one of ${[...GO_TRUE, ...GO_FALSE].join(', ')}`)
}

function pattern(name: string, text: string): string {
  // The Go controller refused to start on an empty pattern; smartnat must not quietly use its default instead.
  if (text === '') throw new Error(`${name} is set but empty: give a regular expression, or unset it for the default ${DEFAULT_INTERFACES_PATTERN}`)
  return text
}

function integer(min?: number): Reader {
  return (name, text) => {
    const value = Number(text)
    if (!/^-?\d+$/.test(text) || !Number.isSafeInteger(value)) throw new Error(`${name}=${JSON.stringify(text)}: must be a whole number`)
    if (min !== undefined && value < min) throw new Error(`${name}=${JSON.stringify(text)}: must be at least ${min}`)
    return value
  }
}

/** HOST:PORT from the Go controller's two monitor settings; an empty IP listened on every address. */
function monitorAddress(ip: string | undefined, port: string | undefined): string {
  // node:net here, not at the top: it loads about 2 ms of Node's modules, for a setting rarely given.
  const {isIP} = process.getBuiltinModule('node:net')
  if (ip !== undefined && ip !== '' && isIP(ip) === 0) throw new Error(`SNCTRLR_MONITOR_IP=${JSON.stringify(ip)}: must be an IP address, or empty for every address`)
  const portNumber = port === undefined ? GO_MONITOR_PORT : (integer(1)('SNCTRLR_MONITOR_PORT', port) as number)
  if (portNumber > 65535) throw new Error(`SNCTRLR_MONITOR_PORT=${JSON.stringify(port)}: must be at most 65535`)
  const host = ip === undefined ? GO_MONITOR_IP : ip === '' ? '0.0.0.0' : ip
  return isIP(host) === 6 ? `[${host}]:${portNumber}` : `${host}:${portNumber}`
}
