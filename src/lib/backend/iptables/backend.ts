/** The iptables backend: smartnat's own chains and ipsets, one jump per built-in chain, plus the shared ip rules and routes. */
import type {Runner} from '../../host/runner.js'
import {routingPayload} from '../../routing/payload.js'
import type {Backend, BackendOptions, LegacyLayout} from '../backend.js'
import {forwardDrops} from '../forward.js'
import {IPTABLES_RESTORE} from '../iptables-syntax.js'
import {applyIptables} from './apply.js'
import {diffIptablesState, isEmptyChanges} from './diff.js'
import {flushGoLayout, flushIptables} from './flush.js'
import {IpsetSession} from './ipset-session.js'
import {iptablesMappings} from './mappings.js'
import {iptablesParts} from './parts.js'
import {readCountedIptablesState, readIptablesState} from './read.js'
import {renderedSummary} from './summary.js'
import {renderRestoreScripts} from './render.js'
import {IptablesRenderer} from './renderer.js'
import {tracePacket} from './trace.js'
import type {IptablesState} from './types.js'

/** The iptables + ipset + ip rule/route backend, running its commands through `runner`. */
export function iptablesBackend(runner: Runner, options: Pick<BackendOptions, 'rendersAgain' | 'longLived'> = {}): Backend<IptablesState> {
  const renderer = new IptablesRenderer({partsFromFirst: options.rendersAgain ?? false})
  // A daemon's set entries go through one kept `ipset -`; a one-shot command's through `ipset restore`.
  const writer = options.longLived ? new IpsetSession(runner) : runner
  return {
    name: 'iptables',
    tools: ['iptables', 'ipset'],
    render: (model) => renderer.render(model),
    apply: (desired, options) => applyIptables(writer, desired, options),
    // A daemon's resync finds the chains and sets it rendered last, unchanged, and shares their lists instead of copying them.
    read: () => readIptablesState(runner, renderer.lastState()),
    flush: (options) => flushIptables(runner, options),
    payloads(desired) {
      const {ipset, iptables} = renderRestoreScripts(desired)
      return [
        {command: 'ipset restore -exist', text: ipset},
        {command: IPTABLES_RESTORE.flat().join(' '), text: iptables},
        routingPayload(desired),
      ]
    },
    ruleCount: (desired) =>
      renderedSummary(desired)?.rules ??
      Object.values(desired.tables).reduce((n, table) => n + table.jumps.length + table.chains.reduce((m, c) => m + c.rules.length, 0), 0),
    programmedMappings: iptablesMappings,
    // Its jump into SNM-FORWARD goes first in iptables' FORWARD: only native nft chains are left to check.
    forward: async () => ({written: 0, drops: await forwardDrops(runner, {backend: 'iptables'})}),
    inspect: {
      trace: tracePacket,
      parts: iptablesParts,
      inSync: (desired, actual) => isEmptyChanges(diffIptablesState(desired, actual)),
      readCounted: () => readCountedIptablesState(runner),
    },
  }
}

/** The Go SmartNat controller's layout on the host `runner` reaches: found and removed here, as it is iptables rules. */
export function goControllerLayout(runner: Runner): LegacyLayout {
  return {flush: (options) => flushGoLayout(runner, options)}
}
