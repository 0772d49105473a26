/**
 * Manifests for `smartnat sync --from-file`: Mappings, and Services with their EndpointSlices
 * built from the lab's Services, written to a temporary directory that a test rewrites between syncs.
 */
import {mkdtemp, rename, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {stringify} from 'yaml'
import {MAPPING_API_VERSION, SERVICE_NAME_LABEL, type MappingMode} from '../../src/lib/mapping/types.js'
import type {LabProtocol, LabService} from './lab.js'

export interface MappingFixture {
  name: string
  namespace?: string
  addresses: string[]
  allowedSources?: string[]
  serviceName: string
  /** Default service. */
  mode?: MappingMode
  ports: {port: number; protocol?: LabProtocol; servicePort?: number}[]
  /** Decides which of two conflicting Mappings wins (the older one). */
  creationTimestamp?: string
}

export interface ServiceFixture {
  name: string
  namespace?: string
  clusterIP: string
  ports: {protocol: LabProtocol; port: number; targetPort: number}[]
  /** Ready endpoints. */
  pods: string[]
}

/** The Service a lab VIP stands for: every port the lab translates for `vip`, and every pod behind them. */
export function serviceFromLab(name: string, services: LabService[], vip: string): ServiceFixture {
  const ports = services.filter((s) => s.vip === vip)
  if (ports.length === 0) throw new Error(`the lab has no Service on ${vip}`)
  return {
    name,
    clusterIP: vip,
    ports: ports.map((s) => ({protocol: s.protocol, port: s.port, targetPort: s.targetPort})),
    pods: [...new Set(ports.flatMap((s) => s.pods))],
  }
}

/** A Service web (ClusterIP 10.96.0.20, tcp 80 to 8080) with one ready pod, 198.19.0.1: what the unit tests plan a Mapping for against the test API server. */
export const WEB_SERVICE: ServiceFixture = {name: 'web', clusterIP: '10.96.0.20', ports: [{protocol: 'tcp', port: 80, targetPort: 8080}], pods: ['198.19.0.1']}

/** A Mapping resource as a user would write it. */
export function mappingManifest(m: MappingFixture): Record<string, unknown> {
  return {
    apiVersion: MAPPING_API_VERSION,
    kind: 'Mapping',
    metadata: {
      name: m.name,
      namespace: m.namespace ?? 'default',
      ...(m.creationTimestamp ? {creationTimestamp: m.creationTimestamp} : {}),
    },
    spec: {
      addresses: m.addresses,
      ...(m.allowedSources ? {allowedSources: m.allowedSources} : {}),
      serviceName: m.serviceName,
      mode: m.mode ?? 'service',
      ports: m.ports.map((p) => ({
        port: p.port,
        protocol: p.protocol ?? 'tcp',
        ...(p.servicePort === undefined ? {} : {servicePort: p.servicePort}),
      })),
    },
  }
}

/** A ClusterIP Service and the EndpointSlice Kubernetes would write for it. */
export function serviceManifests(s: ServiceFixture): Record<string, unknown>[] {
  const namespace = s.namespace ?? 'default'
  const portName = (p: ServiceFixture['ports'][number]) => `${p.protocol}-${p.port}`
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {name: s.name, namespace},
      spec: {
        type: 'ClusterIP',
        clusterIP: s.clusterIP,
        ports: s.ports.map((p) => ({name: portName(p), port: p.port, protocol: p.protocol.toUpperCase(), targetPort: p.targetPort})),
      },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {name: `${s.name}-lab`, namespace, labels: {[SERVICE_NAME_LABEL]: s.name}},
      addressType: 'IPv4',
      ports: s.ports.map((p) => ({name: portName(p), port: p.targetPort, protocol: p.protocol.toUpperCase()})),
      endpoints: s.pods.map((ip) => ({addresses: [ip], conditions: {ready: true}})),
    },
  ]
}

/** A temporary manifest directory; `write` replaces its whole content at once. */
export class ManifestDir {
  private constructor(readonly path: string) {}

  static async create(): Promise<ManifestDir> {
    return new ManifestDir(await mkdtemp(join(tmpdir(), 'smartnat-e2e-')))
  }

  /** Replaces the manifests with these objects; `extraYaml` is appended verbatim (for malformed input). */
  async write(content: {mappings?: MappingFixture[]; services?: ServiceFixture[]; extraYaml?: string}): Promise<void> {
    const objects = [...(content.services ?? []).flatMap(serviceManifests), ...(content.mappings ?? []).map(mappingManifest)]
    const text = [...objects.map((o) => stringify(o)), ...(content.extraYaml ? [content.extraYaml] : [])].join('---\n')
    const file = join(this.path, 'manifests.yaml')
    // A sync reading the directory sees the old file or the new one, never half of one.
    await writeFile(`${file}.tmp`, text)
    await rename(`${file}.tmp`, file)
  }

  /** A path in this directory for other per-test files (lock files). */
  file(name: string): string {
    return join(this.path, name)
  }

  async remove(): Promise<void> {
    await rm(this.path, {recursive: true, force: true})
  }
}
