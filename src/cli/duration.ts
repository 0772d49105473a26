/** Durations as flags take them: `500ms`, `30s`, `5m`, `1h`, or a bare number of seconds. */

const UNIT_MS: Record<string, number> = {ms: 1, s: 1000, m: 60_000, h: 3_600_000}

/** `text` in milliseconds; undefined when it is not a positive duration. */
function parseDuration(text: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim())
  if (!match) return undefined
  const ms = Math.round(Number(match[1]) * UNIT_MS[match[2] ?? 's']!)
  return ms > 0 ? ms : undefined
}

/** The value of the duration flag `--flag` in milliseconds; an Error naming the flag when it is not a positive duration. */
export function flagDuration(flag: string, text: string): number {
  const ms = parseDuration(text)
  if (ms === undefined) throw new Error(`--${flag} "${text}" must be a positive duration such as 500ms, 30s, 5m, 1h or a number of seconds`)
  return ms
}
