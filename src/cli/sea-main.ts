/**
 * The single executable's entry (`scripts/bundle.ts --sea`): bin/run.cjs's CLI, reading the package's
 * files (package.json, the rendered help) from what the build put inside it, not from disk. It
 * holds only the answers without oclif; the rest of the CLI is a second script (sea-loader.ts).
 */
import {PACKAGE, RENDERED_HELP} from 'smartnat-sea:help'

import {answerWithoutOclif} from './fast-start.js'
import {startCommandReadAhead} from './read-ahead.js'
import {runBundledCli} from './sea-loader.js'

const argv = process.argv.slice(2)
if (!answerWithoutOclif(argv, {packageInfo: () => PACKAGE, renderedHelp: () => RENDERED_HELP})) {
  startCommandReadAhead(argv)
  runBundledCli()
}
