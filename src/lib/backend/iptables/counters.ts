/** Packet and byte counters of smartnat's rules, from `iptables-save -c` (read.ts reads it). */
import type {Counter} from '../parts.js'
import {TABLES, type TableName} from './types.js'

const COUNTED_RULE = /^\[(\d+):(\d+)\] (-A \S+ .*)$/

/** Parses `iptables-save -c` output; identical rules in one table add up. */
export function parseIptablesCounters(text: string): Map<string, Counter> {
  const counters = new Map<string, Counter>()
  let table: TableName | undefined
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd()
    if (line.startsWith('*')) {
      const name = line.slice(1)
      table = (TABLES as readonly string[]).includes(name) ? (name as TableName) : undefined
      continue
    }
    const match = table && COUNTED_RULE.exec(line)
    if (!match) continue
    const key = `${table} ${match[3]}`
    const seen = counters.get(key) ?? {packets: 0, bytes: 0}
    counters.set(key, {packets: seen.packets + Number(match[1]), bytes: seen.bytes + Number(match[2])})
  }
  return counters
}
