/**
 * smartnat against the Kubernetes API at scale (root): N synthetic Mappings with their Services and
 * EndpointSlices in the test API server (the real HTTP wire protocol: paged lists, watches, the
 * status subresource, Events), the compiled CLI in a throwaway network namespace.
 *
 * - `smartnat sync`: the first run programs the kernel and writes every status and Event; the
 *   second has nothing to write.
 * - `smartnat watch`: from start to ready, then one Mapping gets a port through the API and the
 *   time until the watch has written it to the kernel is taken (checked in the kernel after), then
 *   two periodic resyncs; peak RSS over all of it. Then the same again as deploy/daemonset.yaml and
 *   deploy/smartnat.service start it (MALLOC_ARENA_MAX=2, which a process cannot set for itself); the
 *   target is judged on the first, started by hand.
 *
 * With SMARTNAT_BENCH_EXECUTABLE set to a single executable (`npm run build:sea`), that runs instead of
 * the package's CLI, its peak RSS read from /proc every 20 ms.
 *
 *   npm run bench:api [-- N [iptables|nftables]]
 */
import {writeFileSync} from 'node:fs'
import {join} from 'node:path'
import {BACKEND_NAMES, type BackendName} from '../src/lib/backend/registry.js'
import {addressChainName} from '../src/lib/backend/iptables/names.js'
import {ENDPOINTS_MAP, TABLE_FAMILY, TABLE_NAME} from '../src/lib/backend/nftables/names.js'
import type {MappingResource} from '../src/lib/mapping/types.js'
import type {Ipv4} from '../src/lib/net/ipv4.js'
import {startApiServer, type ApiServer} from '../test/support/apiserver/index.js'
import {BUILD_DIR, EXECUTABLE, buildCli, freePort, runCli} from './cli.js'
import {addHostInterfaces, createNamespace, runKernelBenchmark, type BenchNamespace} from './netns.js'
import {printTable, printTargets, type Target} from './report.js'
import {loadIntoApiServer, syntheticHost, syntheticSnapshot} from './synthetic.js'

const count = Number(process.argv[2] ?? 10_000)
const backend = (process.argv[3] ?? 'iptables') as BackendName
if (!Number.isInteger(count) || count < 1 || !BACKEND_NAMES.includes(backend)) throw new Error('usage: api.ts [COUNT [iptables|nftables]]')

const RESYNC_SECONDS = 5
/** Where the daemon serves its health and metrics; free when the benchmark starts. */
const HEALTH_PORT = await freePort()
const NEW_PORT = 60000

/** The test API server holding the synthetic cluster, and the last of its Mappings. */
async function loadedServer(): Promise<{server: ApiServer; last: MappingResource}> {
  const server = await startApiServer({crds: ['crds/mapping.yaml']})
  const synthetic = syntheticSnapshot(count, syntheticHost().addresses)
  loadIntoApiServer(server, synthetic)
  return {server, last: synthetic.mappings[synthetic.mappings.length - 1]!}
}

/** Whether the kernel of `ns` has the DNAT of `address` tcp/NEW_PORT. */
async function hasNewPort(ns: BenchNamespace, address: Ipv4): Promise<boolean> {
  if (backend === 'iptables') {
    const {stdout} = await ns.runner.run('iptables', ['-t', 'nat', '-S', addressChainName(address)], {okExitCodes: [1]})
    return stdout.includes(`--dport ${NEW_PORT} `)
  }
  const element = `{ ${address} . tcp . ${NEW_PORT} }`
  const result = await ns.runner.run('nft', ['get', 'element', TABLE_FAMILY, TABLE_NAME, ENDPOINTS_MAP, element], {okExitCodes: [1]})
  return result.exitCode === 0
}

async function ready(): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${HEALTH_PORT}/readyz`)).status === 200
  } catch {
    return false
  }
}

/** The watch's kernel writes so far, from its metrics: the sum of smartnat_kernel_writes_total over all kinds. */
async function kernelWrites(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${HEALTH_PORT}/metrics`)).text()
  let sum = 0
  for (const line of text.split('\n')) if (line.startsWith('smartnat_kernel_writes_total')) sum += Number(line.split(' ').pop())
  return sum
}

async function main(): Promise<boolean> {
  buildCli()
  const {server, last} = await loadedServer()
  const ns = await createNamespace('api')
  try {
    await addHostInterfaces(ns, syntheticHost().host)
    await ns.runner.run('sysctl', ['-qw', 'net.ipv4.ip_forward=1'])
    const kubeconfig = join(BUILD_DIR, 'api.kubeconfig')
    writeFileSync(kubeconfig, server.kubeconfig())
    const common = ['--kubeconfig', kubeconfig, '--netns', ns.name, '--backend', backend]
    const host = ['--interfaces', '^ext\\d+$', '--snat', '--lock-file', join(BUILD_DIR, `lock-${ns.name}`)]

    const first = await runCli(['sync', ...common, ...host, '--json'])
    const again = await runCli(['sync', ...common, ...host, '--json'])

    const address = (last.spec as {addresses: Ipv4[]}).addresses[0]!
    const mappingType = server.types.mappings
    const originalPorts = (last.spec as {ports: {port: number; protocol: string; servicePort: number}[]}).ports
    let changeMs = NaN
    const watchOnce = (env: Record<string, string> = {}) =>
      runCli(['watch', ...common, ...host, '--metrics-addr', `127.0.0.1:${HEALTH_PORT}`, '--resync', `${RESYNC_SECONDS}s`, '--log-level', 'warn'], {
        env,
        ready,
        whileRunning: async () => {
          // The new port goes to a port its Service has, so the Mapping stays valid.
          const current = originalPorts
          const ports = [...current, {port: NEW_PORT, protocol: 'tcp', servicePort: current[0]!.servicePort}]
          // Done when the watch has written to the kernel since the change, which its metrics say at
          // once; asking nft for one element makes it list the whole table (about a second).
          const writesBefore = await kernelWrites()
          const started = performance.now()
          server.api.patch(mappingType, last.metadata.namespace, last.metadata.name!, 'application/merge-patch+json', {spec: {ports}})
          while ((await kernelWrites()) === writesBefore) {
            if (performance.now() - started > 30_000) throw new Error('the watch wrote nothing to the kernel within 30 s of the change')
            await new Promise((resolve) => setTimeout(resolve, 5))
          }
          changeMs = performance.now() - started
          if (!(await hasNewPort(ns, address))) throw new Error('the watch wrote to the kernel, but not the new port')
          // Two periodic resyncs, which read the kernel back.
          await new Promise((resolve) => setTimeout(resolve, 2.2 * RESYNC_SECONDS * 1000))
        },
      })
    const watch = await watchOnce()
    const firstChangeMs = changeMs
    // The Mapping as it was, for the next run to make the same change.
    server.api.patch(mappingType, last.metadata.namespace, last.metadata.name!, 'application/merge-patch+json', {spec: {ports: originalPorts}})
    const deployed = await watchOnce({MALLOC_ARENA_MAX: '2'})

    console.log(`\n# smartnat${EXECUTABLE ? ` (${EXECUTABLE})` : ''} from the Kubernetes API (test API server), ${count.toLocaleString('en')} Mappings, ${backend}\n`)
    printTable(
      ['run', 'ms', 'peak RSS MB'],
      [
        ['smartnat sync, first (kernel programmed, every status and Event written)', first.ms, first.rssMb],
        ['smartnat sync, again (nothing to write)', again.ms, again.rssMb],
        ['smartnat watch: start to ready', watch.ms, watch.rssMb],
        ['smartnat watch: one Mapping gets a port through the API, until its pass has written the kernel', firstChangeMs, watch.rssMb],
        ['smartnat watch as the DaemonSet and the systemd unit start it (MALLOC_ARENA_MAX=2): start to ready, peak RSS over the same run', deployed.ms, deployed.rssMb],
      ],
    )
    const targets: Target[] = [
      // The targets at 10,000 Mappings (docs/benchmarks.md, "Memory at 10,000 Mappings").
      {name: `peak RSS of smartnat sync from the API at ${count}`, value: Math.max(first.rssMb, again.rssMb), limit: 200, unit: 'MB'},
      {name: `peak RSS of smartnat watch holding ${count} from the API`, value: watch.rssMb, limit: 150, unit: 'MB'},
    ]
    console.log('')
    return printTargets(targets)
  } finally {
    await ns.destroy()
    await server.stop()
  }
}

await runKernelBenchmark(main)
