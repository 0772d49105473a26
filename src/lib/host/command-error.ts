/** The error of a command that failed, as every runner and conversation reports it. */

/** A command that failed, with everything needed to say why. */
export class CommandError extends Error {
  constructor(
    readonly command: string,
    readonly args: string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
    options?: {cause?: unknown; timedOut?: boolean; signal?: NodeJS.Signals; lost?: boolean},
  ) {
    const what = [command, ...args].join(' ')
    const why = options?.timedOut
      ? 'timed out'
      : options?.lost
        ? 'ended unseen: the shell that started it ended first'
      : options?.signal
        ? `was killed by ${options.signal}`
        : exitCode === undefined
          ? `could not be started${startError(options?.cause)}`
          : `exited with ${exitCode}`
    super(`${what} ${why}${stderr.trim() ? `: ${stderr.trim()}` : ''}`, {cause: options?.cause})
    this.name = 'CommandError'
  }
}

function startError(cause: unknown): string {
  const code = (cause as NodeJS.ErrnoException | undefined)?.code
  return code === 'ENOENT' ? ' (not found on PATH)' : code ? ` (${code})` : ''
}
