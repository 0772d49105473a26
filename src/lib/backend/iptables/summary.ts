/**
 * What every pass asks of the state it renders (its rule count, the Mappings it programs), told by
 * the renderer that assembled it from parts, so a pass does not walk 20,000 rules to learn it.
 */
import type {IptablesState} from './types.js'

/** A rendered state's rule count, and the Mappings its nat rules name (as iptablesMappings reads them from the rules). */
export interface StateSummary {
  rules: number
  mappings(): Set<string>
}

const summaries = new WeakMap<IptablesState, StateSummary>()

/** Records what the renderer knows of `state`. */
export function rememberSummary(state: IptablesState, summary: StateSummary): void {
  summaries.set(state, summary)
}

/** What the renderer told of `state`; undefined for a state read back or built otherwise. */
export function renderedSummary(state: IptablesState): StateSummary | undefined {
  return summaries.get(state)
}
