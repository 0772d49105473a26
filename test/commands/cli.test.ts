import {runCommand} from '@oclif/test'
import {expect} from 'chai'

const root = new URL('../..', import.meta.url).pathname

describe('smartnat CLI', () => {
  it('prints its version', async () => {
    const {stdout} = await runCommand(['--version'], {root})
    expect(stdout).to.match(/^smartnat\/0\.1\.0 linux-x64 node-v\d+\.\d+\.\d+\n$/)
  })

  it('lists every command in its help', async () => {
    const {stdout} = await runCommand(['--help'], {root})
    for (const command of ['sync', 'watch', 'status', 'explain', 'flush', 'autocomplete']) expect(stdout).to.match(new RegExp(`^  ${command}\\s`, 'm'))
  })

  for (const command of ['sync', 'watch', 'status', 'explain', 'flush']) {
    it(`documents ${command} with examples`, async () => {
      const {stdout} = await runCommand([command, '--help'], {root})
      expect(stdout).to.contain('EXAMPLES')
      expect(stdout).to.contain(`$ smartnat ${command}`)
    })
  }

  it('completes commands and flags in bash', async () => {
    const {stdout} = await runCommand(['autocomplete', 'script', 'bash'], {root})
    expect(stdout).to.contain('smartnat')
    expect(stdout).to.match(/complete\b.*smartnat/)
  })
})
