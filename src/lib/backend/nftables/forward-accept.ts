/**
 * The one rule the nftables backend writes outside its table: an accept for smartnat's connections
 * first in iptables' filter FORWARD, whose DROP policy (Docker's, a hardened host's) the table's own
 * forward chain cannot overrule. Written only where that chain filters anything; marked by its
 * comment, which is all that decides whether a FORWARD rule is smartnat's.
 */
import type {Runner} from '../../host/runner.js'
import {IPTABLES_FILTER_READ, outputOrUndefined, parseIptablesForward, type IptablesForward} from '../forward.js'
import {IPTABLES_RESTORE, OWN_CONNECTIONS_MATCH, ruleWords} from '../iptables-syntax.js'

/** The comment that makes a FORWARD rule smartnat's. */
export const FORWARD_ACCEPT_COMMENT = 'smartnat-nftables'

/** The rule as iptables-save prints it. */
export const FORWARD_ACCEPT_RULE = `-A FORWARD ${OWN_CONNECTIONS_MATCH} -m comment --comment ${FORWARD_ACCEPT_COMMENT} -j ACCEPT`

/** Whether a rule of iptables' FORWARD chain (as iptables-save prints it) is smartnat's. */
export function isOwnedForwardRule(rule: string): boolean {
  if (!rule.startsWith('-A FORWARD ')) return false
  const words = ruleWords(rule)
  const at = words.indexOf('--comment')
  return at !== -1 && words[at + 1] === FORWARD_ACCEPT_COMMENT
}

/** smartnat's rules in iptables' FORWARD. */
export function ownedForwardRules(forward: IptablesForward): string[] {
  return forward.rules.filter(isOwnedForwardRule)
}

/**
 * The `iptables-restore --noflush` payload that leaves exactly one accept when `wanted` and the
 * chain filters anything (a DROP policy or rules of others), none when not wanted, and otherwise
 * what is there; empty when nothing needs writing. Pure.
 */
export function forwardAcceptPayload(forward: IptablesForward, wanted: boolean): string {
  const owned = ownedForwardRules(forward)
  const keep = wanted ? owned.indexOf(FORWARD_ACCEPT_RULE) : -1
  const filters = forward.policy === 'DROP' || forward.rules.length > owned.length
  const lines = owned.flatMap((rule, i) => (i === keep ? [] : [rule.replace(/^-A /, '-D ')]))
  if (wanted && keep === -1 && filters) lines.unshift(FORWARD_ACCEPT_RULE.replace(/^-A FORWARD /, '-I FORWARD 1 '))
  return lines.length === 0 ? '' : ['*filter', ...lines, 'COMMIT', ''].join('\n')
}

/** The payload that adds the accept to a host that has none of it (what a dry run prints). */
export function forwardAcceptScript(): string {
  return forwardAcceptPayload({policy: 'DROP', rules: []}, true)
}

/**
 * Reads iptables' FORWARD and writes what forwardAcceptPayload says; returns the rules written and
 * the chain as it is now. A host whose iptables cannot be read (none installed) is left alone.
 */
export async function reconcileForwardAccept(runner: Runner, wanted: boolean): Promise<{written: number; save: string | undefined}> {
  const save = await outputOrUndefined(runner, IPTABLES_FILTER_READ)
  if (save === undefined) return {written: 0, save}
  const written = await writeForwardAccept(runner, parseIptablesForward(save), wanted)
  return {written, save: written === 0 ? save : await outputOrUndefined(runner, IPTABLES_FILTER_READ)}
}

/** Writes what forwardAcceptPayload says of `forward`, the chain as just read; returns the rules written. */
export async function writeForwardAccept(runner: Runner, forward: IptablesForward, wanted: boolean): Promise<number> {
  const payload = forwardAcceptPayload(forward, wanted)
  if (payload === '') return 0
  const [command, args] = IPTABLES_RESTORE
  try {
    await runner.run(command, args, {input: payload})
  } catch (error) {
    throw new Error(`accepting smartnat's connections in iptables' FORWARD: ${command} failed on:\n${payload}`, {cause: error})
  }
  return payload.split('\n').length - 3
}
