/**
 * What bench/kernel.ts and bench/direct.ts both measure: a full apply of a snapshot into an empty network
 * namespace as `smartnat sync` runs it, and its floor (the very payloads fed to the kernel tools in another).
 */
import type {Backend} from '../src/lib/backend/backend.js'
import {createBackend, type BackendName} from '../src/lib/backend/registry.js'
import {READ_COMMANDS} from '../src/lib/backend/iptables/read.js'
import {NFT_READ} from '../src/lib/backend/nftables/read.js'
import type {HostInfo, Snapshot} from '../src/lib/plan/model.js'
import {plan} from '../src/lib/plan/plan.js'
import {readAhead} from '../src/lib/sync/once.js'
import {CountingRunner, withHostNamespace, type CountedCall} from './netns.js'
import {timed} from './report.js'
import {BENCH_PLAN_OPTIONS} from './synthetic.js'

const READS = new Set([...Object.values(READ_COMMANDS), NFT_READ].map(([command, args]) => [command, ...args].join(' ')))

/** The calls that wrote to the kernel: all but the backends' reads. */
export function writesOf(calls: readonly CountedCall[]): CountedCall[] {
  return calls.filter((c) => !READS.has([c.command, ...c.args].join(' ')))
}

/** What a backend renders for a snapshot on a host, planned with the benchmarks' options. */
export function desiredOf(backend: Backend, snapshot: Snapshot, host: HostInfo): unknown {
  return backend.render(plan(snapshot, host, BENCH_PLAN_OPTIONS).model)
}

export interface FullApply {
  planRenderMs: number
  /** From the apply call to its return: what is left of the kernel read, the diff, the writes. */
  applyMs: number
  totalMs: number
  floorMs: number
}

/** One full apply into the empty namespace `names.smartnat`, then the floor: the same payloads straight into the empty `names.floor`. */
export async function fullApplyAndFloor(name: BackendName, snapshot: Snapshot, host: HostInfo, names: {smartnat: string; floor: string}): Promise<FullApply> {
  let payloads: CountedCall[] = []
  const smartnat = await withHostNamespace(names.smartnat, host, async (ns) => {
    const counting = new CountingRunner(ns.runner)
    const backend = createBackend(name, counting)
    // As `smartnat sync` does it: the kernel is read while the plan is made.
    const started = performance.now()
    const kernelRead = readAhead(backend)
    const rendered = await timed(() => desiredOf(backend, snapshot, host))
    const applied = await timed(() => backend.apply(rendered.value, {kernelRead}))
    payloads = writesOf(counting.take())
    return {planRenderMs: rendered.ms, applyMs: applied.ms, totalMs: performance.now() - started}
  })
  const floorMs = await withHostNamespace(names.floor, host, async (ns) => {
    const {ms} = await timed(async () => {
      for (const call of payloads) await ns.runner.run(call.command, call.args, call.input === undefined ? {} : {input: call.input})
    })
    return ms
  })
  return {...smartnat, floorMs}
}
