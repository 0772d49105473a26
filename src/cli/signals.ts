/** How a daemon learns it should stop, and how its process ends once it has. */

export interface StopSignal {
  /** Settles with the first SIGTERM or SIGINT received. */
  readonly received: Promise<NodeJS.Signals>
  /** Removes the listeners; call it once shutdown is over. */
  dispose(): void
}

const SIGNALS: readonly NodeJS.Signals[] = ['SIGTERM', 'SIGINT']

/**
 * Listens for SIGTERM and SIGINT until disposed, also after the first one. With no listener of
 * ours left, a signal-exit hook (listr2's terminal renderer installs one through restore-cursor)
 * would raise the signal again to get its default effect, killing the process in the middle of its
 * shutdown.
 */
export function stopSignal(): StopSignal {
  let settle: (signal: NodeJS.Signals) => void = () => {}
  const received = new Promise<NodeJS.Signals>((resolve) => (settle = resolve))
  const listener = (signal: NodeJS.Signals) => settle(signal)
  for (const signal of SIGNALS) process.on(signal, listener)
  return {
    received,
    dispose() {
      for (const signal of SIGNALS) process.off(signal, listener)
    },
  }
}

/**
 * Ends the process shortly unless it ends by itself first. Its work is done, but requests abandoned
 * to an API server that hangs may hold sockets open for as long as the server keeps them.
 */
export function exitIfLingering(): void {
  setTimeout(() => process.exit(), LINGER_AFTER_STOP_MS).unref()
}

const LINGER_AFTER_STOP_MS = 1000
