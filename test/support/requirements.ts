/**
 * The one place that decides what a test does when this machine lacks what it needs (root, a tool,
 * a platform): under CI it fails, saying what is missing, because CI must run every suite; elsewhere
 * it is skipped, saying why. The reporter counts any skip left under CI as a failure too.
 */
import {spawnSync} from 'node:child_process'

export interface Needs {
  root?: boolean
  /** Commands that must be on PATH. */
  tools?: readonly string[]
}

/** Why `what` cannot run here ("the namespace lab needs root"), or undefined when everything it needs is there. */
export function unmetNeeds(what: string, needs: Needs): string | undefined {
  if (needs.root && process.getuid?.() !== 0) return `${what} needs root`
  const missing = (needs.tools ?? []).filter((tool) => !onPath(tool))
  return missing.length > 0 ? `${what} needs ${missing.join(', ')} on PATH` : undefined
}

/** In a mocha hook or test: nothing when `reason` is undefined; otherwise fail under CI, skip saying why elsewhere. */
export function requireOrSkip(context: Mocha.Context, reason: string | undefined): void {
  if (reason === undefined) return
  if (process.env.CI) throw new Error(`${reason}; CI must run this test`)
  console.log(`      skipped: ${reason}`)
  context.skip()
}

/** `requireOrSkip` for what `unmetNeeds` finds. */
export function requireNeeds(context: Mocha.Context, what: string, needs: Needs): void {
  requireOrSkip(context, unmetNeeds(what, needs))
}

function onPath(tool: string): boolean {
  return spawnSync('sh', ['-c', 'command -v "$1"', 'sh', tool], {stdio: 'ignore'}).status === 0
}
