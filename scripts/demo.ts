/**
 * `npm run demo`: builds a throwaway namespace lab whose cluster serves the Services of examples/,
 * runs `smartnat sync --from-file examples/` against the lab's edge host, sends one TCP request
 * from an outside client through the NAT and tells, step by step, what happened. Root only.
 */
import {rmSync} from 'node:fs'
import {mkdtemp, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {dirname, join, resolve} from 'node:path'
import {fileURLToPath} from 'node:url'
import {readManifests} from '../src/lib/source/file.js'
import type {MappingResource, ServiceResource} from '../src/lib/mapping/types.js'
import type {Snapshot} from '../src/lib/plan/model.js'
import {LAB_PLAN, createLab, labUnavailableReason, type Lab, type LabPod, type LabProtocol, type LabService} from '../test/support/lab.js'
import {smartnat, type CliResult} from '../test/support/smartnat-cli.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..')
const examples = join(root, 'examples')
const client = LAB_PLAN.client1.addresses[0]

const unavailable = labUnavailableReason()
if (unavailable) {
  console.error(`npm run demo builds network namespaces and programs NAT inside them, so ${unavailable}: run "sudo npm run demo".`)
  process.exit(1)
}

let lab: Lab | undefined
let workDir: string | undefined
// The lab removes its namespaces at exit; exiting on Ctrl-C makes sure that exit happens.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    console.log(`\n${signal}: removing the lab`)
    if (workDir) rmSync(workDir, {recursive: true, force: true})
    process.exit(130)
  })
}

try {
  const snapshot = await readManifests(examples)
  const mapping = demoMapping(snapshot)
  const address = String((mapping.spec!.addresses as string[])[0])
  const port = (mapping.spec!.ports as {port: number; servicePort?: number}[])[0]!
  const service = snapshot.services.find((s) => s.metadata.name === mapping.spec!.serviceName && s.metadata.namespace === mapping.metadata.namespace)!
  const {services, pods} = clusterOf(snapshot)

  step('1. The lab')
  lab = await createLab({services, pods})
  workDir = await mkdtemp(join(tmpdir(), 'smartnat-demo-'))
  say(`client1 ${client} ── router ── edge host (namespace ${lab.ns('host')})`)
  say(`  external addresses: eth1 ${LAB_PLAN.host.eth1.addresses.join(', ')}; eth2 ${LAB_PLAN.host.eth2.addresses.join(', ')}`)
  say(`  cluster side: cluster0 ${LAB_PLAN.host.cluster0.address} ── node ${LAB_PLAN.node.address}, which plays kube-proxy for:`)
  for (const s of services) say(`    Service VIP ${s.vip} ${s.protocol}/${s.port} -> pods ${s.pods.join(', ')} port ${s.targetPort}`)

  step(`2. The Mapping (${mapping.metadata.namespace}/${mapping.metadata.name}, from examples/)`)
  say(`${address}:${port.port}/tcp  ->  Service ${service.metadata.name} at ${service.spec!.clusterIP}:${port.servicePort ?? port.port}`)
  say('anyone may connect (no allowedSources); the host masquerades traffic towards the cluster (the default)')

  step('3. smartnat sync --from-file examples/')
  const lock = ['--netns', lab.ns('host'), '--lock-file', join(workDir, 'smartnat.lock')]
  show(await expectOk(smartnat(['sync', '--from-file', examples, ...lock])))

  step('4. What smartnat installed for it (iptables-save and ip rule in the host namespace)')
  const saved = (await lab.exec('host', 'iptables-save', [])).stdout
  const chain = new RegExp(`-d ${address}/32 -j (SNM-A-[0-9a-f]+)`).exec(saved)?.[1]
  for (const line of saved.split('\n')) {
    if (line.startsWith('*')) say(line)
    else if (/^-A (PREROUTING|POSTROUTING|INPUT|FORWARD|SNM-)/.test(line) && (!line.includes('-A SNM-A-') || line.startsWith(`-A ${chain} `))) say(`  ${line}`)
  }
  const rules = (await lab.exec('host', 'ip', ['-4', 'rule', 'show'])).stdout
  for (const line of rules.split('\n').filter((l) => l.includes('fwmark'))) say(`ip rule ${line.trim()}`)
  say('In words:')
  say(`  nat: a packet to ${address} tcp/${port.port} whose source SNM-ALLOW lists (here: everyone) is marked for masquerade,`)
  say('       its connection is marked with the index of the interface it came in on, and it is DNATed to the Service VIP')
  say('  filter: a packet to a mapped address:port that was not DNATed (a source not allowed) is dropped in INPUT;')
  say('          connections carrying an interface mark are accepted in FORWARD, whatever FORWARD’s policy')
  say('  mangle + ip rule: replies get their connection’s interface mark back and leave through that interface’s table')

  step(`5. The request: client1 ${client} -> TCP ${address}:${port.port}, sends "ping"`)
  const answer = await lab.tcpRequest('client1', client, address, port.port, {timeoutMs: 3000})
  if (!answer.ok) throw new Error(`the request got no answer (${answer.error}: ${answer.message})`)
  const flow = (await lab.exec('host', 'conntrack', ['-L', '-p', 'tcp', '--orig-dst', address, '--orig-port-dst', String(port.port)], {okExitCodes: [1]})).stdout
  for (const line of flow.split('\n').filter(Boolean)) say(`conntrack on the host: ${line.replace(/\s+/g, ' ').trim()}`)
  say('(first tuple: what the client sent; second: what the host expects back, from the VIP to its own cluster address)')
  const mark = Number(/mark=(\d+)/.exec(flow)?.[1] ?? 0)
  // The interface index sits in bits 20..27 of the mark; indexes count the external interfaces in name order.
  const index = (mark & 0xff00000) >>> 20
  if (index > 0) say(`(mark=${mark} is 0x${mark.toString(16)}: external interface ${index}, ${['eth1', 'eth2'][index - 1]}, so the reply leaves there)`)

  step('6. The answer')
  say(`"${answer.line}"`)
  say(`pod ${answer.fields.pod} answered on port ${answer.fields.port}: the host DNATed ${address}:${port.port} to ${service.spec!.clusterIP}:${port.servicePort ?? port.port}, the node picked the pod`)
  say(
    answer.fields.from === LAB_PLAN.host.cluster0.address
      ? `the pod saw the connection coming from ${answer.fields.from}, the host's cluster address: masquerade hides the client ${client}`
      : `the pod saw the connection coming from ${answer.fields.from}`,
  )
  const next = await lab.tcpRequest('client1', client, address, port.port, {timeoutMs: 3000})
  if (next.ok) say(`a second connection is answered by pod ${next.fields.pod} (the node balances round-robin)`)

  step('7. Cleaning up: smartnat flush, then the lab goes away')
  show(await expectOk(smartnat(['flush', '--yes', ...lock])))
} catch (error) {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`)
  process.exitCode = 1
} finally {
  await lab?.destroy()
  if (workDir) await rm(workDir, {recursive: true, force: true})
  if (lab) say('lab removed')
}

/** The example Mapping a client of the lab may reach: one without an allow-list. */
function demoMapping(snapshot: Snapshot): MappingResource {
  const open = snapshot.mappings.find((m) => !Array.isArray(m.spec?.allowedSources) || m.spec.allowedSources.length === 0)
  if (!open) throw new Error('examples/ has no Mapping without allowedSources for the demo to reach')
  return open
}

/** The node's Services and pods: every ClusterIP port of the examples, served by the ready endpoints of its EndpointSlices. */
function clusterOf(snapshot: Snapshot): {services: LabService[]; pods: LabPod[]} {
  const services: LabService[] = []
  const pods = new Map<string, {tcp: Set<number>; udp: Set<number>}>()
  for (const service of snapshot.services) {
    const slices = snapshot.endpointSlices.filter(
      (s) => s.metadata.namespace === service.metadata.namespace && s.metadata.labels?.['kubernetes.io/service-name'] === service.metadata.name,
    )
    for (const p of service.spec?.ports ?? []) {
      const protocol = String(p.protocol ?? 'TCP').toLowerCase() as LabProtocol
      const targetPort = targetPortOf(service, p.targetPort, p.port)
      const ready = slices.flatMap((s) => (s.endpoints ?? []).filter((e) => e.conditions?.ready !== false).flatMap((e) => e.addresses))
      for (const ip of ready) {
        const ports = pods.get(ip) ?? {tcp: new Set(), udp: new Set()}
        ports[protocol].add(targetPort)
        pods.set(ip, ports)
      }
      services.push({vip: service.spec!.clusterIP!, protocol, port: p.port, targetPort, pods: ready})
    }
  }
  return {services, pods: [...pods].map(([ip, ports]) => ({ip, tcp: [...ports.tcp], udp: [...ports.udp]}))}
}

function targetPortOf(service: ServiceResource, targetPort: number | string | undefined, port: number): number {
  if (targetPort === undefined) return port
  if (typeof targetPort === 'number') return targetPort
  throw new Error(`Service ${service.metadata.name}: the demo needs numeric targetPorts, not "${targetPort}"`)
}

async function expectOk(run: Promise<CliResult>): Promise<CliResult> {
  const result = await run
  if (result.code !== 0) throw new Error(`smartnat exited with ${result.code}:\n${result.stderr}`)
  return result
}

function step(title: string): void {
  console.log(`\n${title}`)
}

function say(line: string): void {
  console.log(`   ${line}`)
}

function show(result: CliResult): void {
  for (const line of result.stdout.trimEnd().split('\n')) say(`| ${line}`)
}
