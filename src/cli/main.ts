/** oclif from the ES module bundle (dist/cli/main.js): what bin/run.cjs runs with DEBUG set, or when the build made no CLI script. */
// execute alone, not @oclif/core's index: the command imports the rest when it runs.
import {execute} from '@oclif/core/execute'

// From the package root that holds the bundle.
await execute({dir: import.meta.url})
