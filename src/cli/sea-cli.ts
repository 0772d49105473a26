/** The single executable's CLI beyond the answers without oclif: oclif over the plugins the build embedded. */
import {PLUGINS} from 'smartnat-sea:plugins'

import {runEmbeddedOclif} from './sea-oclif.js'

void runEmbeddedOclif(PLUGINS)
