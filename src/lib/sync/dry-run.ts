/** A sync that stops before the kernel: what it would plan, and the payloads it would apply to an empty host. */
import type {Backend, Payload} from '../backend/backend.js'
import type {Plan} from '../plan/model.js'
import {resolve, type ResolveInputs} from './resolve.js'
import type {SyncSettings} from './settings.js'

/** What a dry run shows: the verdicts and the payloads a real sync would apply to an empty host. */
export interface DryRunReport {
  plan: Plan
  payloads: Payload[]
}

/** Resolves and renders without touching the kernel. */
export async function dryRun<State>(inputs: ResolveInputs, settings: SyncSettings, backend: Pick<Backend<State>, 'render' | 'payloads'>): Promise<DryRunReport> {
  const {plan} = await resolve(inputs, settings)
  return {plan, payloads: backend.payloads(backend.render(plan.model))}
}
