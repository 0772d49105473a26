/** Which command lines start their reads with the process (src/lib/host/read-ahead.ts), from the CLI's entry. */
import {DEFAULT_LOCK_PATH} from '../lib/host/lock-path.js'
import {readAheadKey, startReadAhead} from '../lib/host/read-ahead.js'
import {DEFAULT_CONFIG_PATH} from './config-path.js'

/** `status` reads the host the same way at its every run: what it ran last time starts now, beside the script's compiling. */
export function startCommandReadAhead(argv: readonly string[]): void {
  if (argv[0] !== 'status' || argv.includes('--help')) return
  startReadAhead(lockPathOf(argv, process.env, readConfigText), readAheadKey(argv, process.cwd(), process.env))
}

/**
 * The lock's path: the command line's (`--lock-file PATH` or `--lock-file=PATH`), else the config
 * file's `lock-file`, else the default. The config file is the command line's `--config`, else
 * SMARTNAT_CONFIG's, else the default one; only a top-level `lock-file: VALUE` line of it is read here,
 * as the command reads the whole file only once its script is loaded. A file that says it another way
 * leaves the default: the kept reads are then looked for there, and at worst not found.
 */
export function lockPathOf(argv: readonly string[], env: NodeJS.ProcessEnv, readText: (path: string) => string | undefined): string {
  const given = flagValue(argv, '--lock-file')
  if (given !== undefined) return given
  const text = readText(flagValue(argv, '--config') ?? env.SMARTNAT_CONFIG ?? DEFAULT_CONFIG_PATH)
  return (text === undefined ? undefined : configLockFile(text)) ?? DEFAULT_LOCK_PATH
}

function flagValue(argv: readonly string[], flag: string): string | undefined {
  let value: string | undefined
  argv.forEach((arg, i) => {
    if (arg === flag && argv[i + 1] !== undefined) value = argv[i + 1]!
    else if (arg.startsWith(`${flag}=`)) value = arg.slice(flag.length + 1)
  })
  return value
}

/** A top-level `lock-file:` line's plain, single- or double-quoted value (a double-quoted one without escapes). */
export function configLockFile(text: string): string | undefined {
  const line = /^lock-file[ \t]*:[ \t]*(.*?)[ \t]*\r?$/m.exec(text)?.[1]
  if (!line) return undefined
  const quoted = /^(?:"([^"\\]*)"|'((?:[^']|'')*)')(?:[ \t]+#.*)?$/.exec(line)
  if (quoted) return quoted[1] ?? quoted[2]!.replaceAll("''", "'")
  const plain = line.replace(/[ \t]+#.*$/, '')
  if (/^(?:~|null|Null|NULL)$/.test(plain)) return undefined
  return /^[^\s"'#&*!|>%@`{}[\],?:-].*$/.test(plain) ? plain : undefined
}

function readConfigText(path: string): string | undefined {
  try {
    return process.getBuiltinModule('node:fs').readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}
