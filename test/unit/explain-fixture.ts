/**
 * A host with two external interfaces and four Mappings (configured, configured on two interfaces,
 * invalid, not local), and an inspection of it whose kernel state a test may alter.
 */
import type {Backend} from '../../src/lib/backend/backend.js'
import {iptablesBackend} from '../../src/lib/backend/iptables/backend.js'
import type {Counter} from '../../src/lib/backend/parts.js'
import {inspectHost, type Inspection} from '../../src/lib/inspect/inspection.js'
import type {IptablesState} from '../../src/lib/backend/iptables/types.js'
import {compileInterfacesPattern, parseIpAddrJson} from '../../src/lib/host/interfaces.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL} from '../../src/lib/mapping/types.js'
import type {EndpointSliceResource, MappingResource, ServiceResource} from '../../src/lib/mapping/types.js'
import {DEFAULT_PLAN_OPTIONS, type Snapshot} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import type {SyncSettings} from '../../src/lib/sync/settings.js'

const IP_ADDR = JSON.stringify([
  {ifname: 'lo', addr_info: [{family: 'inet', local: '127.0.0.1', prefixlen: 8}]},
  {ifname: 'eth1', addr_info: [{family: 'inet', local: '198.18.0.10', prefixlen: 24}]},
  {ifname: 'eth2', addr_info: [{family: 'inet', local: '198.18.2.10', prefixlen: 24}]},
  {ifname: 'cluster0', addr_info: [{family: 'inet', local: '198.18.4.1', prefixlen: 24}]},
])

export const SETTINGS: SyncSettings = {plan: DEFAULT_PLAN_OPTIONS, interfacesPattern: compileInterfacesPattern('^eth[1-9][0-9]*$')}

function mapping(namespace: string, name: string, spec: Record<string, unknown>): MappingResource {
  return {apiVersion: MAPPING_API_VERSION, kind: 'Mapping', metadata: {namespace, name, creationTimestamp: '2025-01-01T00:00:00Z'}, spec}
}

function service(namespace: string, name: string, clusterIP: string, ports: {port: number; protocol: string}[], pods: string[]): [ServiceResource, EndpointSliceResource] {
  return [
    {apiVersion: 'v1', kind: 'Service', metadata: {namespace, name}, spec: {type: 'ClusterIP', clusterIP, ports}},
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {namespace, name: `${name}-x`, labels: {[SERVICE_NAME_LABEL]: name}},
      addressType: 'IPv4',
      endpoints: pods.map((ip) => ({addresses: [ip], conditions: {ready: true}})),
    },
  ]
}

/** default/web: 198.18.0.10 tcp/80 -> web:8080 from 198.18.1.2 only; shop/api: udp/53 -> api:5353 on both interfaces from 198.18.3.0/24. */
export function snapshot(): Snapshot {
  const [web, webSlice] = service('default', 'web', '198.19.100.10', [{port: 8080, protocol: 'TCP'}], ['198.19.200.11', '198.19.200.12'])
  const [api, apiSlice] = service('shop', 'api', '198.19.100.20', [{port: 5353, protocol: 'UDP'}], ['198.19.200.21'])
  return {
    mappings: [
      mapping('default', 'web', {addresses: ['198.18.0.10'], allowedSources: ['198.18.1.2'], serviceName: 'web', ports: [{port: 80, servicePort: 8080}]}),
      mapping('shop', 'api', {addresses: ['198.18.0.10', '198.18.2.10'], allowedSources: ['198.18.3.0/24'], serviceName: 'api', ports: [{port: 53, protocol: 'udp', servicePort: 5353}]}),
      mapping('default', 'broken', {addresses: ['198.18.0.10'], serviceName: 'missing', ports: [{port: 443}]}),
      mapping('default', 'remote', {addresses: ['198.18.9.9'], serviceName: 'web', ports: [{port: 8080}]}),
    ],
    services: [web, api],
    endpointSlices: [webSlice, apiSlice],
  }
}

/** The state a sync of `snapshot()` would install; tests copy and alter it to play the kernel. */
export function desiredState(settings: SyncSettings = SETTINGS): IptablesState {
  const host = parseIpAddrJson(IP_ADDR, settings.interfacesPattern)
  return iptablesBackend(new RecordingRunner()).render(plan(snapshot(), host, settings.plan).model)
}

export type KernelFixture = {state: IptablesState; counters?: Map<string, Counter>} | {error: Error}

/** Inspects the fixture host against a kernel that holds `kernel` (the desired state when absent). */
export async function inspect(
  kernel: KernelFixture = {state: desiredState()},
  settings: SyncSettings = SETTINGS,
  more: MappingResource[] = [],
): Promise<{inspection: Inspection<IptablesState>; backend: Backend<IptablesState>}> {
  const runner = new RecordingRunner((call) => (call.command === 'ip' && call.args.join(' ') === '-j -4 addr show' ? {stdout: IP_ADDR} : new Error(`unexpected command ${call.command}`)))
  const real = iptablesBackend(runner)
  const backend: Backend<IptablesState> = {
    ...real,
    read: async () => {
      if ('error' in kernel) throw kernel.error
      return kernel.state
    },
    inspect: {
      ...real.inspect,
      readCounted: async () => {
        if ('error' in kernel) throw kernel.error
        return {state: kernel.state, counters: kernel.counters ?? new Map()}
      },
    },
  }
  const loaded = snapshot()
  return {inspection: await inspectHost({runner, backend, loadSnapshot: async () => ({...loaded, mappings: [...loaded.mappings, ...more]})}, settings), backend}
}

/** The error a non-root read of iptables-save ends in. */
export function permissionDenied(): Error {
  return new Error('reading kernel state: iptables-save failed', {
    cause: new Error('iptables-save exited with 4: iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)'),
  })
}

/** A deep copy with one chain's rule (found by a substring) removed. */
export function withoutRule(state: IptablesState, table: keyof IptablesState['tables'], fragment: string): IptablesState {
  const copy = structuredClone(state)
  const chain = copy.tables[table].chains.find((c) => c.rules.some((r) => r.includes(fragment)))
  if (!chain) throw new Error(`test data: no ${table} rule contains ${fragment}`)
  chain.rules = chain.rules.filter((r) => !r.includes(fragment))
  return copy
}
