/** The CLI script (src/cli/cli-script.ts) beyond the answers without oclif: oclif over the plugins the build embedded. */
import {PLUGINS} from 'smartnat-sea:plugins'

import {runEmbeddedOclif} from './sea-oclif.js'

/** The package root, a parameter of the script's wrapper (scripts/bundle.ts). */
declare const __smartnatRoot: string

void runEmbeddedOclif(PLUGINS, __smartnatRoot)
