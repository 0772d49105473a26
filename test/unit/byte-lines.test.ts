/** A tool's output taken apart into lines as its bytes arrive: the same lines as the whole text split, and never more than a line held. */
import {expect} from 'chai'
import {ByteLines} from '../../src/lib/net/byte-lines.js'

/** The lines `chunks` make, in order, as a reader is handed them. */
function linesOf(chunks: readonly Buffer[]): string[] {
  const lines: string[] = []
  const splitter = new ByteLines((line) => lines.push(line))
  for (const chunk of chunks) splitter.push(chunk)
  splitter.end()
  return lines
}

/** `text.split('\n')` without the empty string after a last newline: the lines a reader is handed. */
function expectedLines(text: string): string[] {
  const lines = text.split('\n')
  return text === '' || text.endsWith('\n') ? lines.slice(0, -1) : lines
}

/** `bytes` cut at `cuts` (ascending byte offsets). */
function cutAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  return [0, ...cuts].map((start, i) => bytes.subarray(start, cuts[i] ?? bytes.length))
}

// Characters of two, three and four bytes in UTF-8, an empty line, a carriage return, no newline at the end.
const TEXT = '-A SNM-A-1 -m comment --comment "café/web tcp/80" -j DNAT\n\n€ 2\r\n😀😀\nx\nlast line without a newline é'

describe('ByteLines', () => {
  it('hands over the lines of the text split whole, whatever byte the one cut falls on', () => {
    const bytes = Buffer.from(TEXT, 'utf8')
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(linesOf(cutAt(bytes, [cut])), `cut at byte ${cut}`).to.deep.equal(expectedLines(TEXT))
    }
  })

  it('hands over the same lines from chunks of every size from one byte up, multi-byte characters split among them', () => {
    const bytes = Buffer.from(TEXT, 'utf8')
    for (let size = 1; size <= bytes.length; size++) {
      const cuts = Array.from({length: Math.ceil(bytes.length / size) - 1}, (_, i) => (i + 1) * size)
      expect(linesOf(cutAt(bytes, cuts)), `chunks of ${size} bytes`).to.deep.equal(expectedLines(TEXT))
    }
  })

  it('hands over the same lines from chunks cut at random places, a newline at the end or not', () => {
    // A fixed sequence of pseudo-random cuts (a linear congruential generator): the same in every run.
    let seed = 7
    const next = (below: number) => {
      seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31
      return seed % below
    }
    for (const text of [`${TEXT}\n`, TEXT, '\n', 'é', '', '\n\n\n']) {
      const bytes = Buffer.from(text, 'utf8')
      for (let round = 0; round < 200; round++) {
        const cuts = [...new Set(Array.from({length: next(6)}, () => next(bytes.length + 1)))].sort((a, b) => a - b)
        expect(linesOf(cutAt(bytes, cuts)), `${JSON.stringify(text)} cut at ${cuts.join(', ')}`).to.deep.equal(expectedLines(text))
      }
    }
  })

  it('holds no more than the line it has begun, never the listing: counted after each 64 KiB chunk of a 4 MB listing', () => {
    const lines = Array.from({length: 80_000}, (_, i) => `add SNM-ALLOW 198.18.${(i >> 8) & 255}.${i & 255},tcp:${i % 65_535},0.0.0.0/1 ${'é'.repeat(i % 7)}`)
    lines[40_000] = `-A SNM-A-long ${'x'.repeat(200_000)}`
    const bytes = Buffer.from(lines.join('\n'), 'utf8')
    const longest = Math.max(...lines.map((line) => Buffer.byteLength(line)))
    let handed = 0
    const splitter = new ByteLines(() => handed++)
    let mostHeld = 0
    for (let start = 0; start < bytes.length; start += 65_536) {
      splitter.push(bytes.subarray(start, start + 65_536))
      mostHeld = Math.max(mostHeld, splitter.heldBytes)
    }
    splitter.end()
    expect(handed).to.equal(lines.length)
    expect(splitter.heldBytes).to.equal(0)
    expect(bytes.length).to.be.above(4_000_000)
    expect(mostHeld, `held ${mostHeld} bytes at most`).to.be.below(longest)
    // The long line spans four chunks: it is held whole before it is handed over, and nothing else is.
    expect(mostHeld).to.be.above(150_000)
  })
})
