/** Which command lines start their reads with the process (src/lib/host/read-ahead.ts), from the CLI's entry. */
import {DEFAULT_LOCK_PATH} from '../lib/host/lock-path.js'
import {readAheadKey, startReadAhead} from '../lib/host/read-ahead.js'

/** `status` reads the host the same way at its every run: what it ran last time starts now, beside the script's compiling. */
export function startCommandReadAhead(argv: readonly string[]): void {
  if (argv[0] !== 'status' || argv.includes('--help')) return
  startReadAhead(lockPathOf(argv), readAheadKey(argv, process.cwd(), process.env))
}

/** The lock's path a command line names (`--lock-file PATH` or `--lock-file=PATH`), else the default. */
export function lockPathOf(argv: readonly string[]): string {
  let path = DEFAULT_LOCK_PATH
  argv.forEach((arg, i) => {
    if (arg === '--lock-file' && argv[i + 1] !== undefined) path = argv[i + 1]!
    else if (arg.startsWith('--lock-file=')) path = arg.slice('--lock-file='.length)
  })
  return path
}
