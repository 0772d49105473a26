/** Other processes that hold or race for smartnat's lock, started through test/support/lock-holder.ts. */
import {spawn, type ChildProcess} from 'node:child_process'
import {fileURLToPath} from 'node:url'

const HOLDER = fileURLToPath(new URL('lock-holder.ts', import.meta.url))

export interface LockProcess {
  readonly child: ChildProcess
  /** Settles with the exit code (null when killed) once the process is gone. */
  readonly exited: Promise<number | null>
  /** Settles with the first line the process prints ("held PID" or "ready"). */
  readonly said: Promise<string>
}

/**
 * Starts lock-holder.ts with `args`, behind `wrapper` when given (e.g. `unshare --pid --fork`).
 * Its stdin stays open: closing it (`child.stdin.end()`) lets a holder go.
 */
export function startLockProcess(args: string[], wrapper: string[] = []): LockProcess {
  const command = [...wrapper, process.execPath, '--import', 'tsx', HOLDER, ...args]
  const child = spawn(command[0]!, command.slice(1), {stdio: ['pipe', 'pipe', 'pipe']})
  let stdout = ''
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const said = new Promise<string>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString()
      const line = stdout.split('\n')
      if (line.length > 1) resolve(line[0]!)
    })
    void exited.then((code) => reject(new Error(`lock-holder.ts ${args.join(' ')} exited with ${code} before saying anything: ${stderr.trim()}`)))
  })
  said.catch(() => undefined)
  return {child, exited, said}
}
