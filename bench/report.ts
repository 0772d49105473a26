/** Measuring and printing for the benchmarks: wall time, peak RSS, targets with PASS/FAIL. */

/** Peak resident set size of this process so far, in MB (maxRSS is in kilobytes). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024
}

/** Runs `body` and returns its result with the wall time in milliseconds. */
export async function timed<T>(body: () => T | Promise<T>): Promise<{value: T; ms: number}> {
  const started = performance.now()
  const value = await body()
  return {value, ms: performance.now() - started}
}

/** The median of a non-empty list of numbers. */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing')
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** A benchmark target: `value` must stay at or below `limit` (or above, for `atLeast`). */
export interface Target {
  name: string
  value: number
  limit: number
  unit: string
  atLeast?: boolean
}

/** Prints each target as a PASS/FAIL line and returns whether all passed. */
export function printTargets(targets: readonly Target[]): boolean {
  let ok = true
  for (const t of targets) {
    const pass = t.atLeast ? t.value >= t.limit : t.value <= t.limit
    ok &&= pass
    const relation = t.atLeast ? '>=' : '<='
    console.log(`${pass ? 'PASS' : 'FAIL'}  ${t.name}: ${format(t.value)} ${t.unit} (target ${relation} ${format(t.limit)} ${t.unit})`)
  }
  return ok
}

/** A number with sensible precision for a results table. */
export function format(value: number): string {
  if (Number.isInteger(value)) return String(value)
  return Math.abs(value) >= 100 ? value.toFixed(0) : Math.abs(value) >= 10 ? value.toFixed(1) : value.toFixed(2)
}

/** Prints rows as an aligned plain-text table (also valid Markdown). */
export function printTable(header: readonly string[], rows: readonly (readonly (string | number)[])[]): void {
  const cells = [header, ...rows.map((r) => r.map((c) => (typeof c === 'number' ? format(c) : c)))]
  const widths = header.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)))
  const line = (r: readonly string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  console.log(line(cells[0]!))
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`)
  for (const r of cells.slice(1)) console.log(line(r as string[]))
}
