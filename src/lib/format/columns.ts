/** Human output: aligned columns, and colour only where a person reads it. */
import chalk, {Chalk, type ChalkInstance} from 'chalk'

/** Colours on a terminal, none in pipes and files, none when NO_COLOR is set (https://no-color.org). */
export function outputPaint(stream: {isTTY?: boolean} = process.stdout, env: NodeJS.ProcessEnv = process.env): ChalkInstance {
  const off = (env.NO_COLOR ?? '') !== '' || (!stream.isTTY && !env.FORCE_COLOR)
  return new Chalk({level: off ? 0 : chalk.level || 1})
}

// Escape sequences take no room on screen, so widths are measured without them.
const ANSI = new RegExp(`${String.fromCharCode(0x1b)}\\[[0-9;]*m`, 'g')

function visibleWidth(text: string): number {
  return text.replace(ANSI, '').length
}

/** Rows under a header, columns two spaces apart, the last column unpadded. */
export function formatTable(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(visibleWidth(h), ...rows.map((row) => visibleWidth(row[i] ?? ''))))
  return [header, ...rows].map((row) =>
    row
      .map((cell, i) => (i === row.length - 1 ? cell : cell + ' '.repeat(widths[i]! - visibleWidth(cell))))
      .join('  ')
      .trimEnd(),
  )
}
