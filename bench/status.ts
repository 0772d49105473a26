/**
 * Status writeback at scale: N synthetic Mappings in the test API server (the real HTTP wire
 * protocol, the CRD's schema checks), with a latency added to every write as a real server's
 * storage adds it. Per way of writing (one at a time, as before, and API_WRITES_IN_FLIGHT at once):
 * one publish that writes every status and its Event, then one that has nothing to write. No root.
 *
 *   npm run bench:status [-- N [WRITE_LATENCY_MS]]
 */
import {KubeConfig} from '@kubernetes/client-node'
import {listSnapshot} from '../src/lib/source/kube/source.js'
import {kubeEventApi, kubeMappingFinalizerApi, kubeMappingStatusApi} from '../src/lib/source/kube/writers.js'
import {plan} from '../src/lib/plan/plan.js'
import {API_WRITES_IN_FLIGHT} from '../src/lib/sync/bounded.js'
import type {SyncReport} from '../src/lib/sync/once.js'
import {apiPublisher} from '../src/lib/sync/publish.js'
import {startApiServer} from '../test/support/apiserver/index.js'
import {printTable, printTargets, timed, type Target} from './report.js'
import {BENCH_PLAN_OPTIONS, loadIntoApiServer, syntheticHost, syntheticSnapshot} from './synthetic.js'

const count = Number(process.argv[2] ?? 2000)
const writeLatencyMs = Number(process.argv[3] ?? 5)
const {host, addresses} = syntheticHost()

interface Round {
  patched: number
  events: number
  errors: number
  ms: number
}

/** A fresh server holding the synthetic cluster; two publishes through it, `inFlight` writes at once. */
async function publishTwice(inFlight: number): Promise<Round[]> {
  const server = await startApiServer({crds: ['crds/mapping.yaml'], writeLatencyMs})
  try {
    loadIntoApiServer(server, syntheticSnapshot(count, addresses))
    const kc = new KubeConfig()
    kc.loadFromString(server.kubeconfig())
    const publisher = apiPublisher({...kubeMappingStatusApi(kc), ...kubeMappingFinalizerApi(kc)}, kubeEventApi(kc), 'bench-host', inFlight)
    const rounds: Round[] = []
    for (let i = 0; i < 2; i++) {
      const snapshot = await listSnapshot(kc)
      const report = {snapshot, plan: plan(snapshot, host, BENCH_PLAN_OPTIONS), host} as SyncReport
      const {value, ms} = await timed(() => publisher.publish(report))
      rounds.push({patched: value.status.patched, events: value.eventsCreated, errors: value.errors.length, ms})
    }
    return rounds
  } finally {
    await server.stop()
  }
}

const rows: (string | number)[][] = []
const targets: Target[] = []
const firstMs: number[] = []
for (const inFlight of [1, API_WRITES_IN_FLIGHT]) {
  const [first, second] = await publishTwice(inFlight)
  firstMs.push(first!.ms)
  rows.push([inFlight, first!.patched, first!.events, first!.ms, second!.patched, second!.ms])
  targets.push({name: `${inFlight} in flight: write errors`, value: first!.errors + second!.errors, limit: 0, unit: ''})
  targets.push({name: `${inFlight} in flight: writes on the second publish`, value: second!.patched + second!.events, limit: 0, unit: ''})
}
console.log(`Status writeback of ${count.toLocaleString('en')} Mappings through the test API server, ${writeLatencyMs} ms added to every write`)
printTable(['writes in flight', 'statuses patched', 'Events', 'first publish ms', 'then patched', 'second publish ms'], rows)
console.log(`\nfirst publish, ${API_WRITES_IN_FLIGHT} in flight vs one at a time: ${(firstMs[0]! / firstMs[1]!).toFixed(1)}x faster`)
process.exitCode = printTargets(targets) ? 0 : 1
