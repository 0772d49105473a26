import {expect} from 'chai'
import {spawnSync} from 'node:child_process'
import {fileURLToPath} from 'node:url'

const CHILD = fileURLToPath(new URL('../support/stop-signal-child.ts', import.meta.url))

describe('stopSignal', () => {
  it('lets a process with a child process running shut down on SIGTERM, and ignores a second signal', () => {
    const result = spawnSync(process.execPath, ['--import', 'tsx', CHILD], {encoding: 'utf8', timeout: 20_000})
    expect({status: result.status, signal: result.signal, stdout: result.stdout}, result.stderr).to.deep.equal({
      status: 0,
      signal: null,
      stdout: 'stopped by SIGTERM\n',
    })
  })
})
