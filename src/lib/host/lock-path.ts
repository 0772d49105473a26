/** Where the lock is unless --lock-file says: a module of its own, so that the CLI's entry finds it without the lock's code (read-ahead.ts). */
export const DEFAULT_LOCK_PATH = '/run/smartnat/smartnat.lock'
