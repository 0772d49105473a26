/**
 * The one logger: leveled, structured lines with time, level, msg and fields.
 * JSON lines for machines (journald, log shippers); `time LEVEL msg key=value ...` for a person at a terminal.
 */

export type LogLevel = 'debug' | 'info' | 'warn' | 'error'

export const LOG_LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error']

export type LogFormat = 'json' | 'text'

export type LogFields = Record<string, unknown>

export interface Logger {
  debug(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  error(msg: string, fields?: LogFields): void
  /** A logger that adds `fields` to every line (e.g. `{component: 'source'}`). */
  with(fields: LogFields): Logger
}

export interface LoggerOptions {
  /** Lines below this level are dropped (default info). */
  level?: LogLevel
  format?: LogFormat
  /** Receives one complete line, without the newline (default: process.stdout). */
  write?: (line: string) => void
  now?: () => Date
}

// A field may not replace the line's own keys; it keeps its value under a prefixed name instead.
const RESERVED = new Set(['time', 'level', 'msg'])

/** Creates a logger writing one line per call. */
export function createLogger(options: LoggerOptions = {}): Logger {
  const threshold = LOG_LEVELS.indexOf(options.level ?? 'info')
  const format = options.format ?? 'json'
  const write = options.write ?? ((line: string) => void process.stdout.write(`${line}\n`))
  const now = options.now ?? (() => new Date())

  const make = (bound: LogFields): Logger => {
    const emit = (level: LogLevel, msg: string, fields: LogFields = {}) => {
      if (LOG_LEVELS.indexOf(level) < threshold) return
      const entries = fieldEntries({...bound, ...fields})
      const time = now().toISOString()
      write(format === 'json' ? jsonLine(time, level, msg, entries) : textLine(time, level, msg, entries))
    }
    return {
      debug: (msg, fields) => emit('debug', msg, fields),
      info: (msg, fields) => emit('info', msg, fields),
      warn: (msg, fields) => emit('warn', msg, fields),
      error: (msg, fields) => emit('error', msg, fields),
      with: (fields) => make({...bound, ...fields}),
    }
  }
  return make({})
}

/** A logger that writes nothing (library defaults, tests that do not look at logs). */
export const silentLogger: Logger = createLogger({write: () => {}})

function fieldEntries(fields: LogFields): [string, unknown][] {
  const entries: [string, unknown][] = []
  for (const [key, value] of Object.entries(fields)) {
    if (value === undefined) continue
    entries.push([RESERVED.has(key) ? `field.${key}` : key, plain(value)])
  }
  return entries
}

// Errors and dates have no useful JSON form of their own.
function plain(value: unknown): unknown {
  if (value instanceof Error) return errorText(value)
  if (value instanceof Date) return value.toISOString()
  if (typeof value === 'bigint') return value.toString()
  return value
}

/** An error as one line of text; smartnat's errors already carry what their cause said. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/** An error's message followed by its causes', which say what a kernel tool printed. */
export function errorChain(error: unknown): string {
  const messages: string[] = []
  for (let e: unknown = error; e instanceof Error && messages.length < 5; e = e.cause) messages.push(e.message)
  return messages.length > 0 ? messages.join(': ') : String(error)
}

function jsonLine(time: string, level: LogLevel, msg: string, entries: [string, unknown][]): string {
  return JSON.stringify({time, level, msg, ...Object.fromEntries(entries)})
}

function textLine(time: string, level: LogLevel, msg: string, entries: [string, unknown][]): string {
  const fields = entries.map(([key, value]) => `${key}=${textValue(value)}`)
  return [time, level.toUpperCase().padEnd(5), msg, ...fields].join(' ')
}

// Bare when unambiguous, JSON-quoted when a space, quote or '=' would make the line hard to split.
function textValue(value: unknown): string {
  if (typeof value === 'string') return value !== '' && /^[^\s"=\\]+$/.test(value) ? value : JSON.stringify(value)
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return String(value)
  return JSON.stringify(value)
}
