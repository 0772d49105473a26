/** The nftables backend: one table smartnat owns (`table ip smartnat`) plus the shared ip rules and routes. */
import type {Runner} from '../../host/runner.js'
import type {Backend} from '../backend.js'
import {applyNftables} from './apply.js'
import {flushNftables} from './flush.js'
import {readNftState} from './read.js'
import {renderNftables} from './render.js'
import type {NftState} from './types.js'

/** The nftables backend, running its commands through `runner`. */
export function nftablesBackend(runner: Runner): Backend<NftState> {
  return {
    name: 'nftables',
    render: renderNftables,
    apply: (desired, options) => applyNftables(runner, desired, options),
    read: () => readNftState(runner),
    flush: (options) => flushNftables(runner, options),
  }
}
