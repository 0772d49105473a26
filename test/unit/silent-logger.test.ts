/** The logger the CLI script hands oclif when DEBUG is unset (src/cli/sea-oclif.ts): oclif takes it, and it prints nothing. */
import {getLogger, setLogger, clearLoggers} from '@oclif/core/logger'
import {expect} from 'chai'

import {silentLogger} from '../../src/cli/sea-oclif.js'

describe('silentLogger', () => {
  // oclif keeps the first root logger of the process: commands run in-process by other tests leave theirs.
  beforeEach(() => clearLoggers())
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
    const {stderr, stdout} = process
    const [stderrWrite, stdoutWrite] = [stderr.write, stdout.write]
    stderr.write = stdout.write = ((chunk: string) => written.push(String(chunk)) > 0) as typeof stdout.write
    try {
      const logger = silentLogger('oclif').child('config')
      for (const log of [logger.debug, logger.error, logger.info, logger.trace, logger.warn]) log('loaded %s', 'x')
    } finally {
      stderr.write = stderrWrite
      stdout.write = stdoutWrite
    }
    expect(written).to.deep.equal([])
  })
})
