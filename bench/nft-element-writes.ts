/**
 * The nftables element writes of a watch's changes at scale (root): in a throwaway namespace holding
 * the table of N synthetic Mappings, each kind of change and its way back written R times, through
 * `nft -f` (a process per change) and through the daemon's kept `nft -i`, timed from the write's
 * start to nft's answer. CPU is what the nft processes used, counted once they were reaped.
 *
 *   node --import tsx bench/nft-element-writes.ts [COUNT] [ROUNDS]
 */
import {execSync} from 'node:child_process'
import {readFileSync} from 'node:fs'
import {performance} from 'node:perf_hooks'
import {applyNftables} from '../src/lib/backend/nftables/apply.js'
import {NftablesRenderer} from '../src/lib/backend/nftables/renderer.js'
import {NftSession} from '../src/lib/backend/nftables/session.js'
import type {NftState} from '../src/lib/backend/nftables/types.js'
import {plan} from '../src/lib/plan/plan.js'
import type {Snapshot} from '../src/lib/plan/model.js'
import {CountingRunner, runKernelBenchmark, withHostNamespace} from './netns.js'
import {median, printTable} from './report.js'
import {BENCH_PLAN_OPTIONS, syntheticHost, syntheticPods, syntheticSnapshot, withPorts, withSlice} from './synthetic.js'

const count = Number(process.argv[2] ?? 10_000)
const rounds = Number(process.argv[3] ?? 30)

/** CPU ms of the children this process has reaped (utime + stime of the ones waited for), from /proc. */
function reapedChildrenCpuMs(): number {
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1]!.split(' ')
  // Fields 16 and 17 of stat (cutime, cstime), counted from 1, in clock ticks; field 3 is fields[0] here.
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / 100
}

/** A kind of change: the snapshot after it in round `k`. */
interface Kind {
  name: string
  change: (k: number) => Snapshot
}

function kinds(base: Snapshot): Kind[] {
  const allow = (snapshot: Snapshot, index: number, sources: string[]): Snapshot => {
    const mappings = [...snapshot.mappings]
    mappings[index] = {...mappings[index]!, spec: {...mappings[index]!.spec!, allowedSources: sources}}
    return {...snapshot, mappings}
  }
  const target = (k: number) => (k * 7919) % count
  return [
    {name: 'endpoint removed', change: (k) => withSlice(base, target(k), [syntheticPods(target(k))[0]])},
    {name: 'endpoint added', change: (k) => withSlice(base, target(k), [...syntheticPods(target(k)), `198.19.255.${(k % 250) + 1}`])},
    {name: 'Mapping updated (a port removed)', change: (k) => withPorts(base, target(k), (ports) => ports.slice(1))},
    {name: 'allow-list changed', change: (k) => allow(base, target(k), [`198.18.${100 + (k % 100)}.0/24`])},
  ]
}

async function main(): Promise<boolean> {
  const {host, addresses} = syntheticHost()
  const base = syntheticSnapshot(count, addresses)
  const rows: (string | number)[][] = []
  console.log(`${count.toLocaleString('en')} Mappings, ${rounds} rounds of each change and its way back; ${execSync('uptime').toString().trim()}`)
  for (const way of ['nft -f', 'nft -i'] as const) {
    await withHostNamespace(`nftel-${way === 'nft -f' ? 'f' : 'i'}`, host, async (ns) => {
      const runner = new CountingRunner(ns.runner)
      const renderer = new NftablesRenderer({partsFromFirst: true})
      const render = (snapshot: Snapshot) => renderer.render(plan(snapshot, host, BENCH_PLAN_OPTIONS).model)
      let actual: NftState = render(base)
      await applyNftables(runner, actual)
      const session = way === 'nft -i' ? new NftSession(runner) : undefined
      // The session's first question (its probe) is not a change.
      if (session) await session.takes('probe')
      for (const kind of kinds(base)) {
        runner.take()
        const cpuBefore = reapedChildrenCpuMs()
        const there: number[] = []
        const back: number[] = []
        for (let k = 0; k < rounds; k++) {
          for (const [snapshot, times] of [
            [kind.change(k), there],
            [base, back],
          ] as const) {
            const desired = render(snapshot)
            const started = performance.now()
            await applyNftables(runner, desired, {assumeActual: actual}, session)
            times.push(performance.now() - started)
            actual = desired
          }
        }
        const writes = runner.take().filter((call) => call.command === 'nft')
        if (writes.length !== rounds * 2) throw new Error(`${kind.name}: ${writes.length} nft writes for ${rounds * 2} changes`)
        session?.close()
        // Reaped once it has exited: its CPU is then counted.
        await new Promise((resolve) => setTimeout(resolve, 300))
        const cpu = (reapedChildrenCpuMs() - cpuBefore) / (rounds * 2)
        rows.push([kind.name, way, median(writes.filter((_, i) => i % 2 === 0).map((w) => w.ms)).toFixed(1), median(writes.filter((_, i) => i % 2 === 1).map((w) => w.ms)).toFixed(1), cpu.toFixed(1)])
        if (session) await session.takes('probe')
      }
      session?.close()
    })
  }
  printTable(['change', 'written with', 'change ms (p50)', 'way back ms (p50)', 'nft CPU ms per write'], rows)
  console.log(execSync('uptime').toString().trim())
  return true
}

await runKernelBenchmark(main)
