/** A Backend for tests of the sync pipeline: its state is a label, it writes and reads nothing; a test overrides what it watches. */
import type {ApplyResult, Backend} from '../../src/lib/backend/backend.js'
import {UNINSPECTED} from './uninspected.js'

/** What an apply that found nothing to change reports. */
export const NOTHING_CHANGED: ApplyResult = {changed: false, written: {sets: 0, chains: 0, rules: 0, routes: 0}, changedEndpoints: []}

/** A backend that touches no kernel, with `overrides` in place of its members. */
export function inertBackend(overrides: Partial<Backend> = {}): Backend {
  return {
    name: 'nftables',
    tools: [],
    render: () => 'state',
    apply: async () => NOTHING_CHANGED,
    read: async () => 'state',
    flush: async () => ({dryRun: true, changed: false, removed: {jumps: [], chains: [], sets: [], ipRules: [], routes: []}}),
    payloads: () => [],
    ruleCount: () => 0,
    programmedMappings: () => new Set(),
    forward: async () => ({written: 0, drops: []}),
    inspect: UNINSPECTED,
    ...overrides,
  }
}
