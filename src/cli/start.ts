/**
 * The CLI's entry (bin/run.cjs), as CommonJS (dist/cli/start.cjs): --version and COMMAND --help from
 * the build, everything else through the CLI script; with DEBUG set, or when the build made no
 * script, through oclif from the ES modules (dist/cli/main.js), whose source maps name src/.
 */
import {answerWithoutOclif} from './fast-start.js'
import {runPackageScript} from './package-script.js'
import {startCommandReadAhead} from './read-ahead.js'

const argv = process.argv.slice(2)
if (!answerWithoutOclif(argv)) {
  startCommandReadAhead(argv)
  if (process.env.DEBUG || !runPackageScript()) void import('./main.js')
}
