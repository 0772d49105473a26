/** The CLI's entry (bin/run.js): --version and COMMAND --help from the build, everything else through the CLI script, or oclif when there is none. */
import {answerWithoutOclif} from './fast-start.js'
import {runPackageScript} from './package-script.js'

// With DEBUG set oclif prints every error's stack: the ES module bundle has the source maps that name src/.
if (!answerWithoutOclif(process.argv.slice(2)) && (process.env.DEBUG || !runPackageScript())) {
  const {runOclif} = await import('./oclif-main.js')
  await runOclif()
}
