/**
 * Forward-hook drops of smartnat's connections (docs/kernel-layout-nftables.md): an accept ends one
 * table's chain, not the hook, so a base chain elsewhere whose policy is drop stops DNATed traffic.
 */
import type {Runner} from '../host/runner.js'
import {INTERFACE_MASK, markHex} from '../net/marks.js'
import {withHostFault} from '../plan/faults.js'
import type {Plan} from '../plan/model.js'
import {OWN_CONNECTIONS_MATCH} from './iptables-syntax.js'
import {TABLE_FAMILY, TABLE_NAME} from './nft-table.js'

/** The iptables rule that accepts smartnat's connections in FORWARD, as iptables-save prints it. */
export const IPTABLES_FORWARD_ACCEPT = `${OWN_CONNECTIONS_MATCH} -j ACCEPT`

/** The nft rule that accepts smartnat's connections in a forward chain. */
export const NFT_FORWARD_ACCEPT = `ct mark & ${markHex(INTERFACE_MASK)} != 0 accept`

/** How a ForwardDrop names iptables' own FORWARD chain. */
export const IPTABLES_FORWARD = 'iptables FORWARD'

/** The command that prints iptables' FORWARD chain with its policy. */
export const IPTABLES_FILTER_READ: readonly [string, readonly string[]] = ['iptables-save', ['-t', 'filter']]

/** A base chain on the forward hook, as `nft -j list chains` names it. */
export interface ForwardChain {
  family: string
  table: string
  name: string
}

/** A chain that drops smartnat's forwarded connections. */
export interface ForwardDrop {
  /** `iptables FORWARD`, or the nft chain: `inet fw forward`. */
  chain: string
  /** Which chain drops them and why smartnat's own accept does not help: what each Mapping is told. */
  reason: string
  /** What makes the chain accept them. */
  fix: string
}

/** iptables' filter FORWARD chain as iptables-save prints it. */
export interface IptablesForward {
  /** `ACCEPT` or `DROP`; undefined when the output has no filter table. */
  policy: string | undefined
  /** Its rules, `-A FORWARD ...`, in order. */
  rules: string[]
}

/** Parses `iptables-save -t filter` down to the FORWARD chain. */
export function parseIptablesForward(save: string): IptablesForward {
  const forward: IptablesForward = {policy: undefined, rules: []}
  for (const raw of save.split('\n')) {
    const line = raw.trimEnd()
    if (line.startsWith(':FORWARD ')) forward.policy = line.split(' ')[1]
    else if (line.startsWith('-A FORWARD ')) forward.rules.push(line)
  }
  return forward
}

/** Whether a FORWARD rule accepts smartnat's connections: the operator's `IPTABLES_FORWARD_ACCEPT`, with or without a comment. */
function acceptsOwnConnections(rule: string): boolean {
  return rule.startsWith(`-A FORWARD ${OWN_CONNECTIONS_MATCH} `) && rule.endsWith(' -j ACCEPT')
}

/** Parses `iptables-save -t filter`: FORWARD drops by default and holds no accept for smartnat's connections. */
export function iptablesForwardDrops(save: string): boolean {
  const forward = parseIptablesForward(save)
  return forward.policy === 'DROP' && !forward.rules.some(acceptsOwnConnections)
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
    return acceptsOwnConnectionsExpr(rule.expr)
  })
}

/**
 * Whether a rule's `expr` is exactly NFT_FORWARD_ACCEPT:
 * `[{"match": {"op": "!=", "left": {"&": [{"ct": {"key": "mark"}}, MASK]}, "right": 0}}, {"accept": null}]`.
 */
function acceptsOwnConnectionsExpr(expr: unknown): boolean {
  if (!Array.isArray(expr) || expr.length !== 2) return false
  const match = onlyField(expr[0], 'match')
  if (!isRecord(match) || match.op !== '!=' || !isMark(match.right, 0)) return false
  const operands = onlyField(match.left, '&')
  if (!Array.isArray(operands) || operands.length !== 2 || !isMark(operands[1], INTERFACE_MASK)) return false
  const ct = onlyField(operands[0], 'ct')
  return isRecord(ct) && ct.key === 'mark' && isRecord(expr[1]) && Object.keys(expr[1]).length === 1 && expr[1].accept === null
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** The value of an object's one and only field, when it has that field alone. */
function onlyField(value: unknown, name: string): unknown {
  return isRecord(value) && Object.keys(value).length === 1 ? value[name] : undefined
}

// nft prints marks as integers; like its own parser, compare them as 32-bit values.
function isMark(value: unknown, mark: number): boolean {
  return typeof value === 'number' && Number.isInteger(value) && value >>> 0 === mark
}

/** The one line an operator reads: which chain drops, and what to do. */
export function forwardDropProblem(drop: ForwardDrop): string {
  return `${drop.reason}: DNATed traffic is dropped; ${drop.fix}`
}

/** `planned` with every address it programmed told that its forwarded traffic is dropped, and why; as it is when nothing drops. */
export function withForwardDrops(planned: Plan, drops: readonly ForwardDrop[]): Plan {
  if (drops.length === 0) return planned
  return withHostFault(planned, `forwarded traffic is dropped: ${drops.map((drop) => drop.reason).join('; ')}`)
}

export interface ForwardDropOptions {
  /** Whose accept is in iptables' FORWARD: the iptables backend's jump always; the nftables backend's rule when allowed to write it. */
  backend: 'iptables' | 'nftables'
  /** The nftables backend adds its accept to iptables' FORWARD itself (not --no-forward-accept). */
  forwardAccept?: boolean
  /** `iptables-save -t filter` output already read; read here when undefined. */
  iptablesSave?: string
}

/**
 * The chains that drop smartnat's forwarded connections: iptables' FORWARD policy for the nftables
 * backend (the iptables backend accepts there first, itself), native nft forward chains for either.
 * What cannot be read (not root, a tool missing) is not reported.
 */
export async function forwardDrops(runner: Runner, options: ForwardDropOptions): Promise<ForwardDrop[]> {
  const drops: ForwardDrop[] = []
  // Read once, and only when needed: the iptables backend needs it only when nft shows iptables-nft's FORWARD.
  let filter: Promise<string | undefined> | undefined
  const filterSave = () => (filter ??= options.iptablesSave === undefined ? outputOrUndefined(runner, IPTABLES_FILTER_READ) : Promise.resolve(options.iptablesSave))
  const [save, listed] = await Promise.all([options.backend === 'nftables' ? filterSave() : undefined, outputOrUndefined(runner, ['nft', ['-j', 'list', 'chains']])])
  if (save !== undefined && iptablesForwardDrops(save)) {
    drops.push({
      chain: IPTABLES_FORWARD,
      reason: "iptables' FORWARD chain drops by default (policy DROP), which the nftables backend's accept cannot overrule",
      fix: options.forwardAccept
        ? `\`smartnat sync\` accepts smartnat's connections there first (\`iptables -I FORWARD 1 ${IPTABLES_FORWARD_ACCEPT}\`, marked as smartnat's)`
        : `accept smartnat's connections there first (--no-forward-accept keeps smartnat from doing it): \`iptables -I FORWARD 1 ${IPTABLES_FORWARD_ACCEPT}\``,
    })
  }
  for (const chain of parsedOrUndefined(listed, nftForwardDropChains) ?? []) {
    // iptables-nft keeps iptables' FORWARD in `ip filter`, where iptables-save reads it.
    if (chain.family === 'ip' && chain.table === 'filter' && chain.name === 'FORWARD' && (await filterSave()) !== undefined) continue
    const rules = await outputOrUndefined(runner, ['nft', ['-j', 'list', 'chain', chain.family, chain.table, chain.name]])
    if (parsedOrUndefined(rules, nftChainAcceptsSmartnat)) continue
    const where = `${chain.family} ${chain.table} ${chain.name}`
    drops.push({
      chain: where,
      reason: `nft chain ${where} drops forwarded traffic by default (policy drop), which smartnat's accept cannot overrule`,
      fix: `accept smartnat's connections there first: \`nft insert rule ${where} ${NFT_FORWARD_ACCEPT}\``,
    })
  }
  return drops
}

/** A command's output, or undefined when it cannot be run (not root, not installed). */
export async function outputOrUndefined(runner: Runner, [command, args]: readonly [string, readonly string[]]): Promise<string | undefined> {
  try {
    return (await runner.run(command, [...args])).stdout
  } catch {
    return undefined
  }
}

// Output that is not what the parser expects counts as unreadable, like output that cannot be had.
function parsedOrUndefined<T>(text: string | undefined, parse: (text: string) => T): T | undefined {
  if (text === undefined) return undefined
  try {
    return parse(text)
  } catch {
    return undefined
  }
}
