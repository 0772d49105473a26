import {runCommand} from '@oclif/test'
import {expect} from 'chai'

import {sourceConfig} from '../../bin/source-config.js'

// From src/, whether or not a build left oclif.manifest.json behind.
const config = await sourceConfig()

describe('smartnat CLI', () => {
  it('prints its version', async () => {
    const {stdout} = await runCommand(['--version'], config)
    expect(stdout).to.match(/^smartnat\/0\.1\.0 linux-x64 node-v\d+\.\d+\.\d+\n$/)
  })

  it('runs the commands from src/ in development, even beside a built oclif.manifest.json', () => {
    for (const id of ['sync', 'watch', 'status', 'explain', 'flush']) expect(config.findCommand(id)?.relativePath?.[0]).to.equal('src')
  })

  it('lists every command in its help', async () => {
    const {stdout} = await runCommand(['--help'], config)
    for (const command of ['sync', 'watch', 'status', 'explain', 'flush', 'autocomplete']) expect(stdout).to.match(new RegExp(`^  ${command}\\s`, 'm'))
  })

  for (const command of ['sync', 'watch', 'status', 'explain', 'flush']) {
    it(`documents ${command} with examples`, async () => {
      const {stdout} = await runCommand([command, '--help'], config)
      expect(stdout).to.contain('EXAMPLES')
      expect(stdout).to.contain(`$ smartnat ${command}`)
    })
  }

  it('completes commands and flags in bash', async () => {
    const {stdout} = await runCommand(['autocomplete', 'script', 'bash'], config)
    expect(stdout).to.contain('smartnat')
    expect(stdout).to.match(/complete\b.*smartnat/)
  })
})
