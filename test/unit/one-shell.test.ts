/** Several commands from one shell (src/lib/host/one-shell.ts), run by a real `sh`: each command's output and exit status, framed apart. */
import {expect} from 'chai'

import {runInOneShell} from '../../src/lib/host/one-shell.js'
import {ExecRunner} from '../../src/lib/host/runner.js'
import {RecordingRunner} from '../support/recording-runner.js'

const runner = new ExecRunner({timeoutSeconds: 10})

describe('runInOneShell', () => {
  it('gives each command its own stdout, stderr and exit status, also output without a final newline', async () => {
    const runs = await runInOneShell(runner, [
      ['printf', ['first']],
      ['ls', ['/nonexistent-smartnat-path']],
      ['no-such-tool-smartnat', ['--version']],
      ['echo', ['last']],
      // Last, and only on stderr.
      ['ls', ['/nonexistent-smartnat-last']],
    ])
    expect(runs?.map((r) => [r.stdout, r.exitCode])).to.deep.equal([
      ['first', 0],
      ['', 2],
      ['', 127],
      ['last', 0],
      ['', 2],
    ])
    expect(runs![1]!.stderr).to.match(/nonexistent-smartnat-path/)
    expect(runs![2]!.stderr).to.match(/no-such-tool-smartnat.*not found/)
    expect(runs![4]!.stderr).to.match(/nonexistent-smartnat-last[^\n]*$/)
    expect([runs![0]!.stderr, runs![3]!.stderr]).to.deep.equal(['', ''])
  })

  it('is undefined when the shell fails or prints something else than the frames', async () => {
    expect(await runInOneShell(new RecordingRunner(() => ({exitCode: 2})), [['true', []]])).to.equal(undefined)
    expect(await runInOneShell(new RecordingRunner(() => ({stdout: 'true\n'})), [['true', []]])).to.equal(undefined)
  })

  it('refuses a word that would need quoting', async () => {
    let error: Error | undefined
    await runInOneShell(runner, [['echo', ['a; rm -rf /']]]).catch((e: Error) => (error = e))
    expect(error?.message).to.equal('runInOneShell: "a; rm -rf /" would need quoting')
  })
})
