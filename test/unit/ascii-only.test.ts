/** The CLI script's non-ASCII characters as escapes (scripts/ascii-only.ts): ASCII text, and the same program. */
import {expect} from 'chai'

import {asciiOnly} from '../../scripts/ascii-only.js'

describe('asciiOnly', () => {
  it('writes each non-ASCII character as an escape that means the same in a regular expression, a string, a template and an identifier', () => {
    // As ansis has it: a raw U+009B (CSI) in a character class; an astral character is two escapes.
    const source = "const caf\u00e9 = 'ok'; return [/[\\x1b\u009b]\\[/.test('\u009b['), 'd\u00e9j\u00e0 \u{1F600}', `\u00b5${1}`, caf\u00e9]"
    const escaped = asciiOnly(source)
    expect(escaped).to.match(/^[\0-\x7f]*$/)
    expect(escaped).to.include(String.raw`[\x1b\u009b]`)
    const run = (text: string) => new Function(text)() as unknown
    expect(run(escaped)).to.deep.equal(run(source))
    expect(run(escaped)).to.deep.equal([true, 'd\u00e9j\u00e0 \u{1F600}', '\u00b51', 'ok'])
  })

  it('leaves ASCII text as it is', () => {
    const source = String.raw`const a = /[\x1b\x9b]/; // \u009b`
    expect(asciiOnly(source)).to.equal(source)
  })
})
