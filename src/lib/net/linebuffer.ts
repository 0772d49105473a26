/** Accumulates a restore payload one line at a time, so no caller assembles text by hand. */

const LINE_BREAK = /[\r\n\0]/

/** Fails on a line holding a line break or NUL: it would smuggle a line of its own into the payload. A bug upstream. */
function checkLine(line: string): void {
  if (LINE_BREAK.test(line)) throw new Error(`refusing to write a payload line with a line break: ${JSON.stringify(line)}`)
}

export class LineBuffer {
  private readonly lines: string[] = []

  /** Appends one line; its words are joined by single spaces. */
  write(...words: (string | number)[]): void {
    const line = words.join(' ')
    checkLine(line)
    this.lines.push(line)
  }

  /** Appends one line per item: `words`, then the item (`add SET entry` for every entry of a set). */
  writeEach(words: readonly (string | number)[], items: readonly string[]): void {
    if (items.length === 0) return
    const prefix = `${words.join(' ')} `
    checkLine(prefix)
    // Each item is tested alone; the whole line is built only to name it when it fails.
    for (const item of items) if (LINE_BREAK.test(item)) checkLine(prefix + item)
    // One string for the whole run of lines: 80,000 set entries are one join, not 80,000 lines.
    this.lines.push(prefix + items.join(`\n${prefix}`))
  }

  /**
   * Appends lines that are already complete (rules as iptables-save prints them, a set's elements),
   * joined into one string at once: kept one by one until the whole payload is joined, 100,000 lines
   * would hold several times the payload's size.
   */
  writeLines(lines: readonly string[]): void {
    if (lines.length === 0) return
    for (const line of lines) checkLine(line)
    this.lines.push(lines.join('\n'))
  }

  /**
   * The payload, each line ended by a newline (restore tools want the last line ended too). Joined
   * with an empty last line rather than followed by a newline: a string added to a long one is a
   * pair of both, which the write to the tool's stdin copies whole into a flat string again.
   */
  toString(): string {
    return this.lines.length === 0 ? '' : [...this.lines, ''].join('\n')
  }
}
