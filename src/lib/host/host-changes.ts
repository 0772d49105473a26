/**
 * This host's addresses and links, followed through `ip monitor` so that a daemon reads them again
 * only when they may have changed, and hears at once of an address added or removed.
 */
import type {Follower, Runner} from './runner.js'

/** The monitor's command: every address and link change, one line each. */
export const HOST_MONITOR: readonly [string, readonly string[]] = ['ip', ['-o', 'monitor', 'address', 'link']]

export class HostChanges {
  private follower: Follower | undefined
  private following = false
  /** True from the start and after every change, until the host is read again. */
  private changed = true
  private readonly listeners = new Set<() => void>()

  constructor(private readonly runner: Runner) {}

  /** Starts following; where the runner cannot follow a process, every read counts as needed. */
  start(): void {
    if (this.follower !== undefined || this.runner.follow === undefined) return
    this.following = true
    this.follower = this.runner.follow(HOST_MONITOR[0], [...HOST_MONITOR[1]], () => this.change())
    // Should the monitor end, nothing tells of changes any more: the host is read on every pass.
    void this.follower.ended.then(() => {
      this.following = false
      this.change()
    })
  }

  /** Whether the host read last is still what the kernel holds, as far as the monitor knows. */
  get unchanged(): boolean {
    return this.following && !this.changed
  }

  /** Says that the host is about to be read: changes from here on count for the next read. */
  reading(): void {
    this.changed = false
  }

  /** Calls `listener` on every change; returns the function that unsubscribes. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async stop(): Promise<void> {
    const follower = this.follower
    this.listeners.clear()
    this.following = false
    await follower?.stop()
  }

  private change(): void {
    this.changed = true
    for (const listener of this.listeners) listener()
  }
}
