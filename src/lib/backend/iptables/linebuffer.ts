/** Accumulates a restore payload one line at a time, so no caller assembles text by hand. */
export class LineBuffer {
  private readonly lines: string[] = []

  /** Appends one line; its words are joined by single spaces. A word holding a line break is a bug upstream. */
  write(...words: (string | number)[]): void {
    const line = words.join(' ')
    if (/[\r\n\0]/.test(line)) throw new Error(`refusing to write a payload line with a line break: ${JSON.stringify(line)}`)
    this.lines.push(line)
  }

  /** Appends one line per item: `words`, then the item (`add SET entry` for every entry of a set). */
  writeEach(words: readonly (string | number)[], items: readonly string[]): void {
    if (items.length === 0) return
    const prefix = `${words.join(' ')} `
    for (const text of [prefix, ...items]) {
      if (/[\r\n\0]/.test(text)) throw new Error(`refusing to write a payload line with a line break: ${JSON.stringify(text === prefix ? prefix : prefix + text)}`)
    }
    // One string for the whole run of lines: 80,000 set entries are one join, not 80,000 lines.
    this.lines.push(prefix + items.join(`\n${prefix}`))
  }

  /** Appends lines that are already complete (rules as iptables-save prints them). */
  writeLines(lines: readonly string[]): void {
    for (const line of lines) this.write(line)
  }

  /** The payload, each line ended by a newline (restore tools want the last line ended too). */
  toString(): string {
    return this.lines.length === 0 ? '' : `${this.lines.join('\n')}\n`
  }
}
