/** The nftables backend: one table smartnat owns (`table ip smartnat`) plus the shared ip rules and routes. */
import type {Runner} from '../../host/runner.js'
import {routingPayload} from '../../routing/payload.js'
import type {Backend, BackendOptions} from '../backend.js'
import {IPTABLES_FORWARD, forwardDrops, type ForwardDrop} from '../forward.js'
import {IPTABLES_RESTORE} from '../iptables-syntax.js'
import {applyNftables} from './apply.js'
import {diffNftState, isEmptyChanges} from './diff.js'
import {flushNftables} from './flush.js'
import {nftMappings} from './mappings.js'
import {forwardAcceptScript, reconcileForwardAccept} from './forward-accept.js'
import {nftParts} from './parts.js'
import {readNftState} from './read.js'
import {NftablesRenderer} from './renderer.js'
import {NftSession} from './session.js'
import {renderNftScript} from './syntax.js'
import {traceNftPacket} from './trace.js'
import type {NftState} from './types.js'

/** The nftables backend, running its commands through `runner`. */
export function nftablesBackend(runner: Runner, options: BackendOptions = {}): Backend<NftState> {
  const forwardAccept = options.forwardAccept ?? true
  const renderer = new NftablesRenderer({partsFromFirst: options.rendersAgain ?? false})
  const session = options.longLived ? new NftSession(runner) : undefined
  return {
    name: 'nftables',
    tools: ['nft'],
    render: (model) => renderer.render(model),
    async apply(desired, applyOptions) {
      const applied = await applyNftables(runner, desired, applyOptions, session)
      if (!applyOptions?.legacy) return applied
      // The Go controller's layout is iptables rules: removed once the table that replaces it is in place.
      if (!options.legacyLayout) throw new Error('the nftables backend was given no way to remove the Go controller’s layout')
      const legacy = await options.legacyLayout.flush({...applyOptions.legacy, dryRun: false})
      return {...applied, changed: applied.changed || legacy.changed, legacy: legacy.removed}
    },
    // A daemon's resync finds the sets it rendered last, unchanged, and keeps those instead of a copy.
    read: () => readNftState(runner, renderer.lastState()?.table),
    flush: (flushOptions) => flushNftables(runner, flushOptions),
    payloads: (desired) => [
      {command: 'nft -f -', text: renderNftScript(desired)},
      routingPayload(desired),
      ...(forwardAccept ? [{command: IPTABLES_RESTORE.flat().join(' '), text: forwardAcceptScript()}] : []),
    ],
    ruleCount: (desired) => desired.table?.chains.reduce((n, chain) => n + chain.rules.length, 0) ?? 0,
    programmedMappings: nftMappings,
    async forward({fix}) {
      let written = 0
      let iptablesSave: string | undefined
      let failure: string | undefined
      if (fix) {
        try {
          ;({written, save: iptablesSave} = await reconcileForwardAccept(runner, forwardAccept))
        } catch (error) {
          failure = error instanceof Error ? error.message : String(error)
        }
      }
      const drops = await forwardDrops(runner, {backend: 'nftables', forwardAccept, ...(iptablesSave === undefined ? {} : {iptablesSave})})
      // A failed write is told where it matters: with the chain that still drops.
      const told = (drop: ForwardDrop) => (drop.chain === IPTABLES_FORWARD ? {...drop, fix: `${drop.fix}; smartnat's own attempt failed: ${failure}`} : drop)
      return {written, drops: failure === undefined ? drops : drops.map(told)}
    },
    // Its rules and elements keep no counters.
    inspect: {
      trace: traceNftPacket,
      parts: nftParts,
      inSync: (desired, actual) => isEmptyChanges(diffNftState(desired, actual)),
    },
  }
}
