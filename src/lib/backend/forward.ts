/**
 * Forward-hook drops smartnat cannot overrule (docs/kernel-layout-nftables.md): an accept ends one
 * table's chain, not the hook, so a base chain elsewhere whose policy is drop stops DNATed traffic.
 */
import type {BackendName} from '../backend/backend.js'
import {INTERFACE_MASK} from '../backend/iptables/names.js'
import {TABLE_FAMILY, TABLE_NAME, markHex} from '../backend/nftables/names.js'
import {parseRuleExpressions} from '../backend/nftables/parse.js'
import type {Runner} from '../host/runner.js'

/** The iptables rule that accepts smartnat's connections in FORWARD, as iptables-save prints it. */
export const IPTABLES_FORWARD_ACCEPT = `-m connmark ! --mark 0x0/0x${INTERFACE_MASK.toString(16)} -j ACCEPT`

/** The nft rule that accepts smartnat's connections in a forward chain. */
export const NFT_FORWARD_ACCEPT = `ct mark & ${markHex(INTERFACE_MASK)} != 0 accept`

/** A base chain on the forward hook, as `nft -j list chains` names it. */
export interface ForwardChain {
  family: string
  table: string
  name: string
}

/** Parses `iptables-save -t filter`: FORWARD drops by default and holds no accept for smartnat's connections. */
export function iptablesForwardDrops(save: string): boolean {
  const lines = save.split('\n').map((line) => line.trimEnd())
  return /^:FORWARD DROP\b/m.test(save) && !lines.includes(`-A FORWARD ${IPTABLES_FORWARD_ACCEPT}`)
}

/** Parses `nft -j list chains`: IPv4 base chains on the forward hook with policy drop, outside smartnat's table. */
export function nftForwardDropChains(json: string): ForwardChain[] {
  const items = (JSON.parse(json) as {nftables?: unknown[]}).nftables ?? []
  const chains: ForwardChain[] = []
  for (const item of items) {
    const chain = (item as {chain?: Record<string, unknown>}).chain
    if (!chain || chain.hook !== 'forward' || chain.policy !== 'drop') continue
    const [family, table, name] = [String(chain.family), String(chain.table), String(chain.name)]
    if (family !== 'ip' && family !== 'inet') continue
    if (family === TABLE_FAMILY && table === TABLE_NAME) continue
    chains.push({family, table, name})
  }
  return chains
}

/** Parses `nft -j list chain ...`: whether it holds the accept for smartnat's connections. */
export function nftChainAcceptsSmartnat(json: string): boolean {
  const items = (JSON.parse(json) as {nftables?: unknown[]}).nftables ?? []
  return items.some((item) => {
    const rule = (item as {rule?: {expr?: unknown}}).rule
    if (!rule) return false
    const parsed = parseRuleExpressions(rule.expr)
    if ('unknown' in parsed || parsed.statement.kind !== 'accept' || parsed.matches.length !== 1) return false
    const [match] = parsed.matches
    return match!.kind === 'mark' && match!.of === 'ct' && match!.mask === INTERFACE_MASK && match!.value === 0 && match!.negate
  })
}

/**
 * Failed prerequisites, each with its fix: iptables' FORWARD policy for the nftables backend (the
 * iptables backend accepts there itself), and native nft forward chains for either backend.
 * What cannot be read (not root, a tool missing) is not reported.
 */
export async function forwardDropProblems(runner: Runner, backend: BackendName): Promise<string[]> {
  const problems: string[] = []
  const save = await outputOrUndefined(runner, 'iptables-save', ['-t', 'filter'])
  if (backend === 'nftables' && save !== undefined && iptablesForwardDrops(save)) {
    problems.push(
      `iptables' FORWARD chain drops by default (policy DROP), which the nftables backend's accept cannot overrule: DNATed traffic is dropped; accept smartnat's connections there first: \`iptables -I FORWARD 1 ${IPTABLES_FORWARD_ACCEPT}\``,
    )
  }
  const chains = await outputOrUndefined(runner, 'nft', ['-j', 'list', 'chains'])
  if (chains === undefined) return problems
  for (const chain of nftForwardDropChains(chains)) {
    // iptables-nft keeps iptables' FORWARD in `ip filter`; iptables-save read it above.
    if (save !== undefined && chain.family === 'ip' && chain.table === 'filter' && chain.name === 'FORWARD') continue
    const rules = await outputOrUndefined(runner, 'nft', ['-j', 'list', 'chain', chain.family, chain.table, chain.name])
    if (rules !== undefined && nftChainAcceptsSmartnat(rules)) continue
    const where = `${chain.family} ${chain.table} ${chain.name}`
    problems.push(
      `nft chain ${where} drops forwarded traffic by default (policy drop), which smartnat's accept cannot overrule: DNATed traffic is dropped; accept smartnat's connections there first: \`nft insert rule ${where} ${NFT_FORWARD_ACCEPT}\``,
    )
  }
  return problems
}

async function outputOrUndefined(runner: Runner, command: string, args: string[]): Promise<string | undefined> {
  try {
    return (await runner.run(command, args)).stdout
  } catch {
    return undefined
  }
}
