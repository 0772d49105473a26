/** The CLI's entry (bin/run.js): --version and COMMAND --help from the build, everything else through oclif. */
import {answerWithoutOclif} from './fast-start.js'

if (!answerWithoutOclif(process.argv.slice(2))) {
  const {runOclif} = await import('./oclif-main.js')
  await runOclif()
}
