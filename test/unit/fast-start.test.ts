/** Which starts bin/run.cjs answers without oclif, and which it leaves to oclif (the built CLI's answers: test/commands/built-cli.test.ts). */
import {expect} from 'chai'

import {answerWithoutOclif} from '../../src/cli/fast-start.js'

const RENDERED = {help: {'': 'smartnat help\n', sync: 'sync help\n'}}

function pipe(isTTY = false): NodeJS.WriteStream & {written: string} {
  const stream = {isTTY, written: '', write: (text: string) => ((stream.written += text), true)}
  return stream as unknown as NodeJS.WriteStream & {written: string}
}

/** What bin/run.cjs prints without oclif for ARGV, or undefined when it leaves the start to oclif. */
function answer(argv: string[], env: NodeJS.ProcessEnv = {}, tty = false): string | undefined {
  const stdout = pipe(tty)
  const answered = answerWithoutOclif(argv, {env, stdout, renderedHelp: () => RENDERED})
  if (!answered) expect(stdout.written, 'written while leaving the start to oclif').to.equal('')
  return answered ? stdout.written : undefined
}

describe('answers without oclif', () => {
  it('prints the version line as oclif builds it', () => {
    expect(answer(['--version'])).to.match(/^smartnat\/0\.1\.0 linux-x64 node-v\d+\.\d+\.\d+\n$/)
  })

  it("prints a command's and the root's rendered help to a pipe without colour", () => {
    expect(answer(['sync', '--help'])).to.equal('sync help\n')
    expect(answer(['--help'])).to.equal('smartnat help\n')
    expect(answer([])).to.equal('smartnat help\n')
    // NO_COLOR wins over what would colour a pipe, as in oclif's colour library.
    expect(answer(['sync', '--help'], {CI: 'true', NO_COLOR: '1'})).to.equal('sync help\n')
  })

  it('leaves to oclif whatever it could print otherwise', () => {
    const cases: [string[], NodeJS.ProcessEnv, boolean][] = [
      [['--version', '--verbose'], {}, false],
      [['sync', '--help'], {}, true],
      [['sync', '--help'], {OCLIF_COLUMNS: '120'}, false],
      [['sync', '--help'], {FORCE_COLOR: '1'}, false],
      [['sync', '--help'], {CI: 'true'}, false],
      [['sync', '--help'], {COLORTERM: 'truecolor'}, false],
      [['watch', '--help'], {}, false],
      [['sync', '--dry-run', '--help'], {}, false],
      [['sync', '-h'], {}, false],
      [['--config', '--help'], {}, false],
    ]
    for (const [argv, env, tty] of cases) expect(answer(argv, env, tty), `${argv.join(' ')} ${JSON.stringify(env)} tty=${tty}`).to.equal(undefined)
  })

  it('leaves the help to oclif when the build rendered none (tsc alone, or the sources)', () => {
    const stdout = pipe()
    expect(answerWithoutOclif(['sync', '--help'], {env: {}, stdout})).to.equal(false)
  })
})
