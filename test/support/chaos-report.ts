/** The chaos suite's report: one row per case and backend, printed as a table and written under tmp/ for the docs. */
import {mkdir, writeFile} from 'node:fs/promises'
import {dirname} from 'node:path'
import {fileURLToPath} from 'node:url'

export interface ChaosRow {
  case: string
  backend: string
  /** How long the fault lasted (from injecting it to lifting it, or the last kill). */
  faultSeconds: number
  /** Probes (new TCP connections and UDP exchanges) sent to the untouched Mappings, and those lost. */
  probes: number
  lost: number
  /** How long /readyz answered anything but 200 from the fault's start until ready again. */
  notReadySeconds: number
  /** From the fault's end to the first /readyz 200; undefined when it never came. */
  readyAgainSeconds: number | undefined
  /** "ok", or the first line of what failed. */
  outcome: string
  notes: string[]
}

/** tmp/chaos-report.md at the repository's root. */
export const CHAOS_REPORT_PATH = fileURLToPath(new URL('../../tmp/chaos-report.md', import.meta.url))

const seconds = (value: number | undefined) => (value === undefined ? 'never' : value.toFixed(1))

/** The rows as a Markdown table, notes listed below it. */
export function chaosTable(rows: ChaosRow[], settings: string): string {
  const lines = [
    `Chaos suite (${settings})`,
    '',
    '| case | backend | fault s | probes | lost | not ready s | ready again after s | outcome |',
    '|---|---|---:|---:|---:|---:|---:|---|',
    ...rows.map((r) => `| ${r.case} | ${r.backend} | ${r.faultSeconds.toFixed(1)} | ${r.probes} | ${r.lost} | ${r.notReadySeconds.toFixed(1)} | ${seconds(r.readyAgainSeconds)} | ${r.outcome.replaceAll('|', '\\|')} |`),
  ]
  const notes = rows.filter((r) => r.notes.length > 0)
  if (notes.length > 0) lines.push('', ...notes.map((r) => `- ${r.case} (${r.backend}): ${r.notes.join('; ')}`))
  return `${lines.join('\n')}\n`
}

/** Writes the table to CHAOS_REPORT_PATH. */
export async function writeChaosReport(text: string): Promise<void> {
  await mkdir(dirname(CHAOS_REPORT_PATH), {recursive: true})
  await writeFile(CHAOS_REPORT_PATH, text)
}
