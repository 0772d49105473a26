/** Packet and byte counters of smartnat's rules, from `iptables-save -c` (read.ts reads it). */
import type {Counter} from '../parts.js'
import {TABLES, type TableName} from './types.js'

const COUNTED_RULE = /^\[(\d+):(\d+)\] (-A \S+ .*)$/
const COUNTER_PREFIX = /^\[\d+:\d+\] /

/** Takes `iptables-save -c` output line by line as it arrives; identical rules in one table add up. */
export class IptablesCounters {
  readonly counters = new Map<string, Counter>()
  private table: TableName | undefined

  /** Notes the counters of a rule's line, and gives the line back as plain iptables-save prints it (without `[packets:bytes] `). */
  line(raw: string): string {
    const line = raw.trimEnd()
    if (line.startsWith('*')) {
      const name = line.slice(1)
      this.table = (TABLES as readonly string[]).includes(name) ? (name as TableName) : undefined
      return raw
    }
    const match = this.table && COUNTED_RULE.exec(line)
    if (match) {
      const key = `${this.table} ${match[3]}`
      const seen = this.counters.get(key) ?? {packets: 0, bytes: 0}
      this.counters.set(key, {packets: seen.packets + Number(match[1]), bytes: seen.bytes + Number(match[2])})
    }
    const prefix = COUNTER_PREFIX.exec(raw)
    return prefix ? raw.slice(prefix[0].length) : raw
  }
}
