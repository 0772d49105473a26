/**
 * Splits a tool's output into lines as its bytes arrive, so that a reader never holds the whole
 * listing: each line is decoded from UTF-8 alone, a string of its own (not a slice of a larger one,
 * which would keep it alive). A newline byte never occurs inside a multi-byte UTF-8 character, so a
 * character split between two chunks is decoded whole with its line.
 */

const NEWLINE = 0x0a

export class ByteLines {
  /** The bytes of the line begun but not ended yet, copied out of the chunks they came in. */
  private pending: Buffer[] = []
  private pendingLength = 0

  constructor(private readonly onLine: (line: string) => void) {}

  /** How many bytes of an unfinished line are held: at most one line's. */
  get heldBytes(): number {
    return this.pendingLength
  }

  /** Takes the next chunk: hands over every line it ends, keeps the rest for the next. */
  push(chunk: Buffer): void {
    let start = 0
    let newline = chunk.indexOf(NEWLINE)
    if (newline !== -1 && this.pendingLength > 0) {
      this.pending.push(chunk.subarray(0, newline))
      this.handOverPending()
      start = newline + 1
      newline = chunk.indexOf(NEWLINE, start)
    }
    for (; newline !== -1; newline = chunk.indexOf(NEWLINE, start)) {
      this.onLine(chunk.toString('utf8', start, newline))
      start = newline + 1
    }
    if (start < chunk.length) {
      // A copy: a view would keep the whole chunk alive for its last few bytes.
      this.pending.push(Buffer.from(chunk.subarray(start)))
      this.pendingLength += chunk.length - start
    }
  }

  /** The output has ended: hands over its last line when no newline ended it. */
  end(): void {
    if (this.pendingLength > 0) this.handOverPending()
  }

  private handOverPending(): void {
    const line = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending)
    this.pending = []
    this.pendingLength = 0
    this.onLine(line.toString('utf8'))
  }
}
