/** The backends by name. Adding one is a folder under backend/ with its factory, and one line here. */
import {CommandError, type Runner} from '../host/runner.js'
import type {Backend, BackendOptions, LegacyLayout} from './backend.js'
import {goControllerLayout, iptablesBackend} from './iptables/backend.js'
import {nftablesBackend} from './nftables/backend.js'
import {ApplyError, type FlushReport} from './result.js'

// The first is the default (--backend).
const BACKENDS = {
  iptables: iptablesBackend,
  nftables: nftablesBackend,
} as const

export type BackendName = keyof typeof BACKENDS
export const BACKEND_NAMES = Object.keys(BACKENDS) as BackendName[]

/** The backend called `name`, running its commands through `runner`. */
export function createBackend(name: BackendName, runner: Runner, options: BackendOptions = {}): Backend {
  return BACKENDS[name](runner, {legacyLayout: goControllerLayout(runner), ...options}) as Backend
}

/** What the Go SmartNat controller left on the host `runner` reaches (flush --legacy). */
export function legacyLayout(runner: Runner): LegacyLayout {
  return goControllerLayout(runner)
}

/**
 * Flushes what any backend owns, so a host that switched backends keeps nothing of either.
 * A backend whose tool is not installed cannot have installed anything.
 */
export function everyBackend(runner: Runner): Pick<Backend, 'flush'> {
  return {
    async flush(options) {
      const reports: FlushReport[] = []
      for (const name of BACKEND_NAMES) {
        try {
          reports.push(await createBackend(name, runner).flush(options))
        } catch (error) {
          if (!(error instanceof ApplyError && notInstalled(error.cause)) && !notInstalled(error)) throw error
        }
      }
      return mergeFlushReports(options.dryRun, reports)
    },
  }
}

function notInstalled(error: unknown): boolean {
  return error instanceof CommandError && error.exitCode === undefined
}

function mergeFlushReports(dryRun: boolean, reports: FlushReport[]): FlushReport {
  // Both backends remove the same ip rules and routes; each is named once.
  const union = (kind: keyof FlushReport['removed']) => [...new Set(reports.flatMap((r) => r.removed[kind]))]
  return {
    dryRun,
    changed: reports.some((r) => r.changed),
    removed: {jumps: union('jumps'), chains: union('chains'), sets: union('sets'), ipRules: union('ipRules'), routes: union('routes')},
  }
}
