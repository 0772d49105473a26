/** The logger the CLI script hands oclif when DEBUG is unset (src/cli/sea-oclif.ts): oclif takes it, and it prints nothing. */
import {getLogger, setLogger, clearLoggers} from '@oclif/core/logger'
import {expect} from 'chai'

import {silentLogger} from '../../src/cli/sea-oclif.js'

describe('silentLogger', () => {
  afterEach(() => clearLoggers())

  it('is taken by oclif as its root logger, without the warning oclif gives a logger it rejects', () => {
    const warnings: string[] = []
    const onWarning = (warning: Error) => warnings.push(warning.message)
    process.on('warning', onWarning)
    try {
      const logger = silentLogger('oclif')
      setLogger({root: '.', logger})
      expect(getLogger()).to.equal(logger)
      expect(getLogger('config').namespace).to.equal('oclif:config')
    } finally {
      process.off('warning', onWarning)
    }
    expect(warnings).to.deep.equal([])
  })

  it('writes nothing to stderr or stdout', () => {
    const written: string[] = []
    const writes = [process.stderr.write, process.stdout.write]
    process.stderr.write = process.stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof process.stdout.write
    try {
      const logger = silentLogger('oclif').child('config')
      for (const log of [logger.debug, logger.error, logger.info, logger.trace, logger.warn]) log('loaded %s', 'x')
    } finally {
      ;[process.stderr.write, process.stdout.write] = writes
    }
    expect(written).to.deep.equal([])
  })
})
