#!/usr/bin/env node
// execute alone, not @oclif/core's index: --version and --help need none of the rest (about 25 ms).
import {execute} from '@oclif/core/execute'

await execute({dir: import.meta.url})
