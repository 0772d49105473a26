#!/usr/bin/env node
import {execute} from '@oclif/core'

import {sourceConfig} from './source-config.js'

await execute({development: true, loadOptions: await sourceConfig()})
