/**
 * The mass-removal guard. A source can lie without failing: a manifest file cut short by a writer
 * still parses, an API list made with the wrong context or without the right to list comes back
 * empty. Applied as it is, such a snapshot would remove working rules. So a pass that would remove
 * more than `maxShare` of the Mappings the kernel programs, and at least MIN_HELD_REMOVAL of them,
 * is held: the kernel stays as it is until the removal is allowed (by the operator, or by the same
 * removal persisting for a while). Mappings are counted in the backend states themselves (actual
 * and desired), so the guard measures what the kernel holds, whatever the source says.
 */

/** A removal of fewer Mappings than this is never held, whatever share of the programmed ones it is. */
export const MIN_HELD_REMOVAL = 10

export interface RemovalPolicy {
  /** Largest share (0..1) of the programmed Mappings one pass may remove without being held. */
  maxShare: number
}

export const DEFAULT_REMOVAL_POLICY: RemovalPolicy = {maxShare: 0.5}

/** What one pass would remove of the Mappings programmed now. */
export interface Removal {
  /** Mappings the kernel programs now. */
  programmed: number
  /** Of those, the ones the pass would no longer program (`namespace/name`, sorted). */
  removed: string[]
}

/** Compares the Mappings programmed now with those a pass would program. */
export function measureRemoval(programmed: ReadonlySet<string>, next: ReadonlySet<string>): Removal {
  const removed = [...programmed].filter((mapping) => !next.has(mapping)).sort()
  return {programmed: programmed.size, removed}
}

/** True when `removal` is one to hold: more than the policy's share and at least MIN_HELD_REMOVAL Mappings. */
export function isMassRemoval(removal: Removal, policy: RemovalPolicy): boolean {
  const count = removal.removed.length
  return count >= MIN_HELD_REMOVAL && count > policy.maxShare * removal.programmed
}

/** `50%` for a share of 0.5. */
export function formatShare(share: number): string {
  return `${Math.round(share * 10_000) / 100}%`
}

/** Parses a percentage such as `50%` or `12.5%` (0..100) into a share; anything else is an Error saying what is expected. */
export function parseShare(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/.exec(text)
  const percent = Number(match?.[1])
  if (!match || percent > 100) throw new Error(`"${text}" must be a percentage from 0% to 100%, such as 50%`)
  return percent / 100
}

/** `17 of the 20 Mappings programmed here (default/a, default/b, ... and 12 more)`. */
export function describeRemoval(removal: Removal, shown = 5): string {
  const names = removal.removed.slice(0, shown).join(', ')
  const more = removal.removed.length > shown ? ` and ${removal.removed.length - shown} more` : ''
  return `${removal.removed.length} of the ${removal.programmed} Mappings programmed here (${names}${more})`
}

/** A pass held by the guard: nothing was applied. */
export class MassRemovalError extends Error {
  constructor(
    readonly removal: Removal,
    readonly policy: RemovalPolicy,
  ) {
    super(
      `mass removal held: this sync would remove ${describeRemoval(removal)}, more than --max-removal ${formatShare(policy.maxShare)} and at least ${MIN_HELD_REMOVAL}; the kernel was left as it is`,
    )
    this.name = 'MassRemovalError'
  }
}

/** What a sync pass asks before it applies a mass removal. */
export interface RemovalGuard {
  readonly policy: RemovalPolicy
  /** Whether this mass removal may go ahead anyway. */
  allows(removal: Removal): boolean
}

/** The guard of a one-shot sync: a mass removal goes ahead only when the operator said so. */
export function oneShotGuard(policy: RemovalPolicy, allowMassRemoval: boolean): RemovalGuard {
  return {policy, allows: () => allowMassRemoval}
}

/** A removal being held, since when, and when it may go ahead. */
export interface HeldRemoval {
  removal: Removal
  /** Milliseconds since the epoch: the first pass that saw this very removal. */
  since: number
  /** Milliseconds since the epoch: from then on a pass may apply it. */
  until: number
}

/**
 * The guard of a daemon: a mass removal goes ahead once the same Mappings have been about to be
 * removed for `delayMs`. A different set of Mappings starts the wait again; a pass that applied
 * (whatever it removed) ends it.
 */
export class RemovalHold implements RemovalGuard {
  private current: (HeldRemoval & {key: string}) | undefined

  constructor(
    readonly policy: RemovalPolicy,
    private readonly delayMs: number,
    private readonly clock: {now(): number},
  ) {}

  allows(removal: Removal): boolean {
    return this.current !== undefined && this.current.key === keyOf(removal) && this.clock.now() >= this.current.until
  }

  /** Records a held pass; `first` is true when this removal was not held before. */
  hold(removal: Removal): HeldRemoval & {first: boolean} {
    const key = keyOf(removal)
    const first = this.current?.key !== key
    if (first) {
      const since = this.clock.now()
      this.current = {key, removal, since, until: since + this.delayMs}
    } else {
      this.current!.removal = removal
    }
    const {since, until} = this.current!
    return {removal, since, until, first}
  }

  /** Ends the hold after a pass applied; returns what was held, if anything. */
  release(): HeldRemoval | undefined {
    const held = this.current
    this.current = undefined
    return held && {removal: held.removal, since: held.since, until: held.until}
  }

  /** The removal held now, if any. */
  held(): HeldRemoval | undefined {
    return this.current && {removal: this.current.removal, since: this.current.since, until: this.current.until}
  }
}

function keyOf(removal: Removal): string {
  return removal.removed.join('\n')
}
