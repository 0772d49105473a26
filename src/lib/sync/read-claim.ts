/**
 * A pass that reads the kernel may give way to a change that arrives while it reads: the loop then
 * applies the change with a pass that trusts the state applied last, and this pass writes nothing
 * (its read may predate that pass's writes), so a change never waits for a whole read. Once the
 * pass has begun writing it no longer gives way: two passes never write at once.
 */
export class ReadClaim {
  private stage: 'reading' | 'writing' | 'gaveWay' = 'reading'

  /** The loop wants a change applied first: true (and this pass will write nothing) unless it has begun writing. */
  giveWay(): boolean {
    if (this.stage === 'writing') return false
    this.stage = 'gaveWay'
    return true
  }

  /** Whether the pass gave way. */
  get gaveWay(): boolean {
    return this.stage === 'gaveWay'
  }

  /** The pass is about to write what it read: throws ReadGaveWayError if it gave way, and from now on it does not. */
  write(): void {
    this.check()
    this.stage = 'writing'
  }

  /** Throws ReadGaveWayError if the pass gave way: the work it would do next is wasted. */
  check(): void {
    if (this.stage === 'gaveWay') throw new ReadGaveWayError()
  }
}

/** A reading pass stopped before writing because a change went first; the loop reads again after it. */
export class ReadGaveWayError extends Error {
  constructor() {
    super('the kernel read gave way to a change; nothing was written')
    this.name = 'ReadGaveWayError'
  }
}
