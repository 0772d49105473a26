/** What the sync needs from a backend: render a NatModel, apply it, read it back, flush it. */
import type {Runner} from '../host/runner.js'
import type {NatModel} from '../plan/model.js'
import type {ApplyOptions, ApplyResult, FlushReport} from './result.js'
import {applyIptables} from './iptables/apply.js'
import {flushIptables} from './iptables/flush.js'
import {readIptablesState} from './iptables/read.js'
import {renderIptables} from './iptables/render.js'
import type {IptablesState} from './iptables/types.js'

export type {ApplyOptions, ApplyResult, ChangedEndpoint, FlushReport, WriteCounts} from './result.js'
export {ApplyError} from './result.js'

/** One way of programming NAT into the kernel; `State` is its desired/actual state (comparable, printable). */
export interface Backend<State = unknown> {
  readonly name: string
  /** Pure: the state this NatModel needs in the kernel. */
  render(model: NatModel): State
  /** Makes the kernel match `desired`, writing only what differs; throws ApplyError (forceFull) on failure. */
  apply(desired: State, options?: ApplyOptions): Promise<ApplyResult>
  /** What smartnat owns in the kernel right now. */
  read(): Promise<State>
  /** Removes everything smartnat owns, and nothing else. */
  flush(options: {dryRun: boolean}): Promise<FlushReport>
}

/** The iptables + ipset + ip rule/route backend, running its commands through `runner`. */
export function iptablesBackend(runner: Runner): Backend<IptablesState> {
  return {
    name: 'iptables',
    render: renderIptables,
    apply: (desired, options) => applyIptables(runner, desired, options),
    read: () => readIptablesState(runner),
    flush: (options) => flushIptables(runner, options),
  }
}
