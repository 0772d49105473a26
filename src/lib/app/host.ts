/** The host a command works on: the one runner of its commands, and the backend that programs it. */
import type {Backend} from '../backend/backend.js'
import {createBackend, type BackendName} from '../backend/registry.js'
import {oneShellRunner} from '../host/one-shell.js'
import {LaunchingRunner} from '../host/launcher.js'
import {ExecRunner, KILL_AFTER_MS, type Runner} from '../host/runner.js'

/** How a command runs processes on the host. */
export interface RunnerOptions {
  /** Seconds any single iptables/ipset/nft/ip/conntrack command may take. */
  commandTimeoutSeconds: number
  /** A named network namespace to work in instead of the host's own (labs, tests). */
  netns?: string
}

/** How a command programs the host. */
export interface HostOptions extends RunnerOptions {
  backend: BackendName
  /** With nftables: accept smartnat's connections first in iptables' FORWARD too. */
  forwardAccept: boolean
}

/** The runner every command of this run goes through. */
export function openRunner(options: RunnerOptions): ExecRunner {
  return new ExecRunner({timeoutSeconds: options.commandTimeoutSeconds, ...(options.netns ? {netns: options.netns} : {})})
}

/** A daemon's runner: its processes start through a kept shell (LaunchingRunner). */
export function launchingRunner(options: RunnerOptions): Runner {
  const exec = openRunner(options)
  return new LaunchingRunner(exec, {startShell: () => exec.keep('sh', []), timeoutMs: options.commandTimeoutSeconds * 1000, killAfterMs: KILL_AFTER_MS})
}

/**
 * The runner, and the backend driving it; a daemon's backend keeps what it renders for the next
 * render (BackendOptions.rendersAgain); with batchReads, the commands asked for together run as one
 * shell (oneShellRunner: for a command that only reads).
 */
export function openHost(options: HostOptions, use: {daemon?: boolean; batchReads?: boolean} = {}): {runner: Runner; backend: Backend} {
  const runner = use.batchReads ? oneShellRunner(openRunner(options)) : use.daemon ? launchingRunner(options) : openRunner(options)
  return {runner, backend: createBackend(options.backend, runner, {forwardAccept: options.forwardAccept, rendersAgain: use.daemon ?? false, longLived: use.daemon ?? false})}
}
