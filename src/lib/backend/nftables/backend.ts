/** The nftables backend: one table smartnat owns (`table ip smartnat`) plus the shared ip rules and routes. */
import type {Runner} from '../../host/runner.js'
import {routingPayload, type Backend} from '../backend.js'
import {applyNftables} from './apply.js'
import {flushNftables} from './flush.js'
import {nftMappings} from './mappings.js'
import {readNftState} from './read.js'
import {renderNftables} from './render.js'
import {renderNftScript} from './syntax.js'
import type {NftState} from './types.js'

/** The nftables backend, running its commands through `runner`. */
export function nftablesBackend(runner: Runner): Backend<NftState> {
  return {
    name: 'nftables',
    tools: ['nft'],
    render: renderNftables,
    apply: (desired, options) => applyNftables(runner, desired, options),
    read: () => readNftState(runner),
    flush: (options) => flushNftables(runner, options),
    payloads: (desired) => [{command: 'nft -f -', text: renderNftScript(desired)}, routingPayload(desired)],
    ruleCount: (desired) => desired.table?.chains.reduce((n, chain) => n + chain.rules.length, 0) ?? 0,
    programmedMappings: nftMappings,
  }
}
