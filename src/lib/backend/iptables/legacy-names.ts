/**
 * What the Go SmartNat controller named in iptables and ipset, and how its rules read in
 * iptables-save output: the one predicate deciding what `flush --legacy` and `sync --migrate`
 * remove (docs/operations.md, "Removing the Go controller's rules"); pure.
 *
 * Its helper passed every comment to iptables wrapped in a pair of literal double quotes, so each of
 * its rules carries a comment that iptables-save prints as `"\"...\""`; no other tool's rules look so.
 * Its own names: nat chains `MAP-<24 base32>`, `SNM-POSTROUTING-SNAT`, `SNM-POSTROUTING-MASQ` and
 * `SNM-PREROUTING` (nat and mangle), ipsets `DNAT-<24 base32>` (hash:net,port) and `<24 base32>`
 * (hash:ip), both created with `counters comment`. `SNM-PREROUTING` is also smartnat's own chain's name:
 * such a chain is the Go controller's only when nothing of smartnat's is in it or jumps to it.
 */

/** The first 24 characters of a base32 (RFC 4648) SHA-256: the Go controller's name for a Mapping. */
const BASE32_NAME = '[A-Z2-7]{24}'

/** Chains only the Go controller ever created (nat). */
const GO_ONLY_CHAINS = new Set(['SNM-POSTROUTING-SNAT', 'SNM-POSTROUTING-MASQ'])
const MAPPING_CHAIN = new RegExp(`^MAP-${BASE32_NAME}$`)

/** Chains that both the Go controller and smartnat name so, in nat and in mangle. */
export const SHARED_CHAINS: ReadonlySet<string> = new Set(['SNM-PREROUTING'])

const MAPPING = '[^ "\\\\/]+/[^ "\\\\]+'
/** Every comment the Go controller put on a rule, inside its literal quotes. */
const GO_COMMENTS = [
  'for SNM',
  `for mapping ${MAPPING}`,
  `for mapping ${MAPPING} \\[[A-Za-z]+:\\d+:\\d+\\]`,
  `for Maping ${MAPPING} \\[${BASE32_NAME}\\]`,
  `for Maping ${MAPPING} \\[${BASE32_NAME}\\] mark 0x[0-9a-f]+`,
  'mark for masquerade in SNM-POSTROUTING-MASQ',
  'masquerade traffic marked in PREROUTING rules as destined for services',
]
const GO_RULE = new RegExp(` -m comment --comment "\\\\"(?:${GO_COMMENTS.join('|')})\\\\"" `)
const GO_JUMP = / -m comment --comment "\\"for SNM\\"" -j (\S+)$/

/** Whether the Go controller named a chain so on its own (not a name smartnat uses too). */
export function isGoChainName(table: string, name: string): boolean {
  return table === 'nat' && (isGoOnlyName(name) || MAPPING_CHAIN.test(name))
}

/** Whether a name with smartnat's prefix is one only the Go controller used (smartnat never owns it). */
export function isGoOnlyName(name: string): boolean {
  return GO_ONLY_CHAINS.has(name)
}

/** Whether a rule, as iptables-save prints it, is one the Go controller wrote (by its quoted comment). */
export function isGoRule(line: string): boolean {
  return GO_RULE.test(`${line} `)
}

/** The chain a Go controller's jump from a built-in chain enters, or undefined for any other rule. */
export function goJumpTarget(line: string): string | undefined {
  return GO_JUMP.exec(line)?.[1]
}

const ALLOWED_SOURCES_SET = new RegExp(`^DNAT-${BASE32_NAME}$`)
const PODS_SET = new RegExp(`^${BASE32_NAME}$`)

/** Whether the Go controller created an ipset of this name and type (`ipset save` create line words). */
export function isGoSet(name: string, type: string, options: readonly string[]): boolean {
  if (!options.includes('counters') || !options.includes('comment')) return false
  if (type === 'hash:net,port') return ALLOWED_SOURCES_SET.test(name)
  return type === 'hash:ip' && PODS_SET.test(name)
}

/**
 * Whether a chain of a name both use is the Go controller's: its rules are all the Go controller's,
 * at least one of them is or a Go jump enters it, and no other rule jumps to it.
 */
export function isGoSharedChain(rules: readonly string[], jumpsIn: readonly string[]): boolean {
  if (!rules.every(isGoRule) || !jumpsIn.every(isGoRule)) return false
  return rules.length > 0 || jumpsIn.length > 0
}
