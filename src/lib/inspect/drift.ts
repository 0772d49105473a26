/** Drift: what the kernel has that the desired state does not, and the reverse, told per Mapping. */
import {partKey, type StatePart} from '../backend/parts.js'

export interface Drift {
  /** Desired, but not in the kernel. */
  missing: StatePart[]
  /** In the kernel, but not desired. */
  unexpected: StatePart[]
}

/** Compares parts as multisets: a rule present twice where it is wanted once is drift too. */
export function diffParts(desired: readonly StatePart[], actual: readonly StatePart[]): Drift {
  return {missing: subtract(desired, actual), unexpected: subtract(actual, desired)}
}

function subtract(from: readonly StatePart[], other: readonly StatePart[]): StatePart[] {
  const available = new Map<string, number>()
  for (const part of other) {
    const key = partKey(part)
    available.set(key, (available.get(key) ?? 0) + 1)
  }
  return from.filter((part) => {
    const key = partKey(part)
    const left = available.get(key) ?? 0
    if (left === 0) return true
    available.set(key, left - 1)
    return false
  })
}

/** The drift that concerns one Mapping (`namespace/name`). */
export function driftOf(drift: Drift, mapping: string): Drift {
  const concerns = (part: StatePart) => part.mappings.includes(mapping)
  return {missing: drift.missing.filter(concerns), unexpected: drift.unexpected.filter(concerns)}
}

/** The drift in what serves every Mapping alike (jumps, marks, sets' options, reply routing). */
export function sharedDrift(drift: Drift): Drift {
  const shared = (part: StatePart) => part.mappings.length === 0
  return {missing: drift.missing.filter(shared), unexpected: drift.unexpected.filter(shared)}
}

export function isClean(drift: Drift): boolean {
  return drift.missing.length === 0 && drift.unexpected.length === 0
}

/** Every Mapping some drifted part names, sorted. */
export function driftedMappings(drift: Drift): string[] {
  return [...new Set([...drift.missing, ...drift.unexpected].flatMap((part) => part.mappings))].sort()
}
