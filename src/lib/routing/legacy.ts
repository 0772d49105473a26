/**
 * The Go SmartNat controller's reply routing, recognised from what the kernel and rt_tables hold
 * (docs/operations.md, "Removing the Go controller's rules"); pure.
 *
 * It named one routing table per external interface after the interface, with an id derived from
 * the name's MD5 and appended as `<id> <name>` to rt_tables; it sent `from <address>` and
 * `fwmark 0x800+<interface index>` to that table, which holds the interface's subnet and default
 * route. A table is the Go controller's only when its rt_tables line carries exactly that id.
 */
import {crypto} from '../net/hash.js'
import {LineBuffer} from '../net/linebuffer.js'
import {parseIpv4} from '../net/ipv4.js'
import {routeDestination} from './parse.js'

/** One `<id> <name>` line of rt_tables that the Go controller wrote. */
export interface GoRoutingTable {
  id: number
  name: string
  /** The line as it stands in the file. */
  line: string
}

/** One of the Go controller's `ip rule`s: `from <address>` or `fwmark <mark>`, to one of its tables. */
export interface GoIpRule {
  priority: number
  selector: {from: string} | {fwmark: string}
  table: number
}

/** One route in one of the Go controller's tables. */
export interface GoRoute {
  table: number
  dst: string
  /** As `ip route` prints it, without the table. */
  text: string
}

/** The Go controller's reply routing on a host. */
export interface GoRouting {
  tables: GoRoutingTable[]
  ipRules: GoIpRule[]
  routes: GoRoute[]
}

/** The routing table id the Go controller gave an interface's table: MD5 of the name, made odd and kept below 2^31. */
export function goTableId(name: string): number {
  const hash = crypto().createHash('md5').update(name).digest()
  const low = hash[0]! | 1
  const high = hash[3]! >> 1
  return ((high << 24) | (hash[2]! << 16) | (hash[1]! << 8) | low) >>> 0
}

/** The rt_tables lines that are the Go controller's: `<id> <name>` where id is goTableId(name). */
export function parseGoRoutingTables(rtTables: string): GoRoutingTable[] {
  const tables: GoRoutingTable[] = []
  for (const line of rtTables.split('\n')) {
    const match = /^(\d+) (\S+)$/.exec(line)
    if (!match) continue
    const id = Number(match[1])
    if (id === goTableId(match[2]!)) tables.push({id, name: match[2]!, line})
  }
  return tables
}

/** A table as `ip -j` prints it (its name when rt_tables names it, else its id) resolved to a Go table's id. */
function goTable(value: unknown, tables: readonly GoRoutingTable[]): number | undefined {
  const text = String(value ?? '')
  const table = tables.find((t) => t.name === text || String(t.id) === text)
  return table?.id
}

const RULE_KEYS = new Set(['priority', 'src', 'srclen', 'fwmark', 'fwmask', 'table'])
// The Go controller's interface marks start at 0x800 and carry no mask.
const GO_MARK = /^0x[0-9a-f]+$/

function goRuleSelector(item: Record<string, unknown>): GoIpRule['selector'] | undefined {
  // Anything more than a source or a mark (iif, dst, tos, an action other than lookup) is someone else's rule.
  if (Object.keys(item).some((key) => !RULE_KEYS.has(key))) return undefined
  const {src, srclen, fwmark, fwmask} = item
  if (fwmark !== undefined) {
    const mark = typeof fwmark === 'string' && GO_MARK.test(fwmark) ? Number(fwmark) : NaN
    const unmasked = fwmask === undefined || fwmask === '0xffffffff'
    return src === 'all' && unmasked && mark >= 0x800 ? {fwmark: fwmark as string} : undefined
  }
  const single = srclen === undefined || srclen === 32
  return single && parseIpv4(src) !== undefined ? {from: src as string} : undefined
}

/** The Go controller's rules, routes and tables among `ip -j rule show` and `ip -j route show table all` output. */
export function parseGoRouting(rtTables: string, ipRules: readonly Record<string, unknown>[], routes: readonly Record<string, unknown>[]): GoRouting {
  const tables = parseGoRoutingTables(rtTables)
  const rules: GoIpRule[] = []
  for (const item of ipRules) {
    const table = goTable(item.table, tables)
    const selector = table === undefined ? undefined : goRuleSelector(item)
    if (table !== undefined && selector) rules.push({priority: Number(item.priority), selector, table})
  }
  const goRoutes: GoRoute[] = []
  for (const item of routes) {
    const table = goTable(item.table, tables)
    if (table === undefined || typeof item.dst !== 'string') continue
    const words = [item.dst]
    if (typeof item.gateway === 'string') words.push('via', item.gateway)
    if (typeof item.dev === 'string') words.push('dev', item.dev)
    if (typeof item.scope === 'string' && item.scope !== 'global') words.push('scope', item.scope)
    if (typeof item.prefsrc === 'string') words.push('src', item.prefsrc)
    goRoutes.push({table, dst: routeDestination(item.dst), text: words.join(' ')})
  }
  return {tables, ipRules: rules, routes: goRoutes}
}

function ruleArgs(rule: GoIpRule): string[] {
  const selector = 'from' in rule.selector ? ['from', rule.selector.from] : ['fwmark', rule.selector.fwmark]
  return ['priority', String(rule.priority), ...selector, 'table', String(rule.table)]
}

/** The `ip -batch -` payload deleting the Go controller's rules, then the routes of its tables. */
export function goRoutingRemovalPayload(routing: GoRouting): string {
  const out = new LineBuffer()
  for (const rule of routing.ipRules) out.write('rule', 'del', ...ruleArgs(rule))
  for (const route of routing.routes) out.write('route', 'del', route.dst, 'table', String(route.table))
  return out.toString()
}

/** What removing the Go controller's routing takes away, one line per rule, route and rt_tables entry. */
export function describeGoRouting(routing: GoRouting): {ipRules: string[]; routes: string[]; rtTables: string[]} {
  return {
    ipRules: routing.ipRules.map((rule) => ruleArgs(rule).join(' ')),
    routes: routing.routes.map((route) => `${route.text} table ${route.table}`),
    rtTables: routing.tables.map((table) => table.line),
  }
}

/** rt_tables without the Go controller's lines; every other byte stays as it was. */
export function withoutGoTables(rtTables: string, tables: readonly GoRoutingTable[]): string {
  const drop = new Set(tables.map((t) => t.line))
  return rtTables
    .split('\n')
    .filter((line) => !drop.has(line))
    .join('\n')
}
