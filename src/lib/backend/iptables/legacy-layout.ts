/**
 * The Go SmartNat controller's iptables rules and ipsets, found in iptables-save and ipset save
 * output with the predicate of legacy-names.ts; pure. Whatever something else still uses (a rule that
 * stays jumps to a chain, matches a set) is left in place, so removing the rest cannot fail on it.
 */
import {ruleWords} from '../iptables-syntax.js'
import {goJumpTarget, isGoChainName, isGoRule, isGoSet, isGoSharedChain, SHARED_CHAINS} from './legacy-names.js'
import {ruleTarget} from './parse.js'
import {TABLES, type TableName} from './types.js'

/** What of the Go controller's one table holds. */
export interface GoTableLayout {
  /** Its chains: emptied, then deleted. */
  chains: string[]
  /** Its jumps from built-in chains, as iptables-save prints them. */
  jumps: string[]
  /** Its rules in a chain of a name smartnat uses too, which stays (smartnat's). */
  rules: string[]
}

/** The Go controller's iptables and ipset layout on a host. */
export interface GoIptablesLayout {
  tables: Record<TableName, GoTableLayout>
  /** Its ipsets, by name. */
  sets: string[]
}

const BUILTIN_CHAINS = new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING'])

interface SavedRule {
  chain: string
  line: string
  target: string | undefined
}

/** Every table's chains and rules, in iptables-save order. */
function readTables(iptablesSave: string): Map<string, {chains: string[]; rules: SavedRule[]}> {
  const tables = new Map<string, {chains: string[]; rules: SavedRule[]}>()
  let current: {chains: string[]; rules: SavedRule[]} | undefined
  for (const raw of iptablesSave.split('\n')) {
    const line = raw.trimEnd()
    if (line.startsWith('*')) tables.set(line.slice(1), (current = {chains: [], rules: []}))
    else if (!current) continue
    else if (line.startsWith(':')) current.chains.push(line.slice(1).split(' ')[0] ?? '')
    else if (line.startsWith('-A ')) {
      const chain = line.slice(3).split(' ')[0] ?? ''
      current.rules.push({chain, line, target: ruleTarget(ruleWords(line))})
    }
  }
  return tables
}

function goTableLayout(name: string, chains: readonly string[], rules: readonly SavedRule[]): GoTableLayout {
  const rulesOf = (chain: string) => rules.filter((r) => r.chain === chain).map((r) => r.line)
  const entering = (chain: string) => rules.filter((r) => r.target === chain && r.chain !== chain).map((r) => r.line)
  const jumps = rules.filter((r) => BUILTIN_CHAINS.has(r.chain) && goJumpTarget(r.line) !== undefined)
  const removed = new Set(chains.filter((c) => isGoChainName(name, c) || (SHARED_CHAINS.has(c) && isGoSharedChain(rulesOf(c), entering(c)))))
  const goRules = rules.filter((r) => SHARED_CHAINS.has(r.chain) && isGoRule(r.line))
  // A chain that a rule staying in place still enters is not removed: deleting it would fail.
  for (let changed = true; changed; ) {
    changed = false
    const leaving = new Set([...jumps, ...goRules.filter((r) => !removed.has(r.chain))])
    for (const rule of rules) {
      if (rule.target === undefined || !removed.has(rule.target) || removed.has(rule.chain) || leaving.has(rule)) continue
      removed.delete(rule.target)
      changed = true
    }
  }
  return {
    chains: chains.filter((c) => removed.has(c)),
    jumps: jumps.map((r) => r.line),
    rules: goRules.filter((r) => !removed.has(r.chain)).map((r) => r.line),
  }
}

/** Sets that rules staying in place match: they cannot be destroyed, and are not left over. */
function setsInUse(tables: Map<string, {rules: SavedRule[]}>, layout: Record<TableName, GoTableLayout>): Set<string> {
  const used = new Set<string>()
  for (const [name, {rules}] of tables) {
    const go = layout[name as TableName]
    for (const rule of rules) {
      if (go && (go.chains.includes(rule.chain) || go.jumps.includes(rule.line) || go.rules.includes(rule.line))) continue
      const words = rule.line.split(' ')
      for (let i = 0; i < words.length - 1; i++) if (words[i] === '--match-set') used.add(words[i + 1]!)
    }
  }
  return used
}

/** The Go controller's chains, jumps, rules and sets in `iptables-save` and `ipset save` output. */
export function parseGoIptablesLayout(iptablesSave: string, ipsetSave: string): GoIptablesLayout {
  const tables = readTables(iptablesSave)
  const layout = Object.fromEntries(
    TABLES.map((t): [TableName, GoTableLayout] => {
      const table = tables.get(t)
      return [t, table ? goTableLayout(t, table.chains, table.rules) : {chains: [], jumps: [], rules: []}]
    }),
  ) as Record<TableName, GoTableLayout>
  const used = setsInUse(tables, layout)
  const sets: string[] = []
  for (const line of ipsetSave.split('\n')) {
    if (!line.startsWith('create ')) continue
    const [, name = '', type = '', ...options] = line.trimEnd().split(' ')
    if (isGoSet(name, type, options) && !used.has(name)) sets.push(name)
  }
  return {tables: layout, sets: sets.sort()}
}

/** Whether the layout holds nothing. */
export function isEmptyGoLayout(layout: GoIptablesLayout): boolean {
  return layout.sets.length === 0 && TABLES.every((t) => Object.values(layout.tables[t]).every((items) => items.length === 0))
}
