import type {Inspector} from '../../src/lib/backend/backend.js'

function unused(): never {
  throw new Error('a sync pass does not look into states the way explain and status do')
}

/** The `inspect` of a fake Backend in sync tests: a sync never uses it, so any use fails the test. */
export const UNINSPECTED: Inspector<unknown> = {trace: unused, parts: unused, inSync: unused}
