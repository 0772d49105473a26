/** Models as a daemon's planner hands them to the backend, pass after pass: what did not change is the very same object. */
import {isDeepStrictEqual} from 'node:util'
import type {NatModel} from '../../src/lib/plan/model.js'

/** `next` holding `previous`'s objects wherever they are equal, as the planner keeps what did not change. */
export function reusing(previous: NatModel, next: NatModel): NatModel {
  const mappings = new Map(previous.mappings.map((m) => [`${m.namespace}/${m.name}`, m]))
  const egress = new Map(previous.egress.map((e) => [e.address, e]))
  const kept = <T>(old: T | undefined, now: T) => (old !== undefined && isDeepStrictEqual(old, now) ? old : now)
  return {
    ...next,
    mappings: next.mappings.map((m) => kept(mappings.get(`${m.namespace}/${m.name}`), m)),
    egress: next.egress.map((e) => kept(egress.get(e.address), e)),
    interfaces: kept(previous.interfaces, next.interfaces),
  }
}
