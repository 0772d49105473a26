/**
 * The test API server driven by the real kubectl through a written kubeconfig: discovery, OpenAPI-backed
 * apply, server-side printing with the CRD's columns, patches (also of the status subresource), watch,
 * explain and delete. Whatever kubectl needs from a real server, this server must answer the same way.
 */
import {execFile, spawn} from 'node:child_process'
import {mkdir, mkdtemp, readdir, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {expect} from 'chai'
import {parse, parseAllDocuments} from 'yaml'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {requireNeeds} from '../support/requirements.js'

interface Run {
  code: number
  stdout: string
  stderr: string
}

interface ExampleMapping {
  metadata: {name: string; namespace?: string}
  spec: {addresses: string[]; serviceName: string; ports: {port: number}[]}
}

/** The first Mapping, Service and EndpointSlice of a set of manifests, as kubectl will apply them. */
interface Manifests {
  dir: string
  mapping: ExampleMapping
  serviceName: string
  clusterIP?: string
  sliceName: string
  sliceAddresses: string[]
}

const FIXTURE = `apiVersion: smartnat.aureacentral.com/v1alpha1
kind: Mapping
metadata: {name: mapping-echo-service, namespace: default}
spec:
  addresses: [198.18.0.10]
  serviceName: echo-test-service
  mode: service
  ports: [{port: 8080, protocol: tcp, servicePort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo-test-service, namespace: default}
spec:
  clusterIP: 198.19.100.10
  ports: [{name: http, port: 8080, protocol: TCP, targetPort: 8080}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: echo-test-service-x7k2p
  namespace: default
  labels: {kubernetes.io/service-name: echo-test-service}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
  - addresses: [198.19.200.11]
    conditions: {ready: true}
`

/** examples/ when it holds a Mapping, a Service and an EndpointSlice; otherwise a fixture written to `scratch`. */
async function loadManifests(scratch: string): Promise<Manifests> {
  const fromDir = async (dir: string): Promise<Manifests | undefined> => {
    const docs: {kind?: string; metadata?: {name?: string}; spec?: {clusterIP?: string}; endpoints?: {addresses: string[]}[]}[] = []
    for (const file of (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort()) {
      for (const doc of parseAllDocuments(await readFile(join(dir, file), 'utf8'))) docs.push(doc.toJS())
    }
    const mapping = docs.find((d) => d?.kind === 'Mapping') as ExampleMapping | undefined
    const service = docs.find((d) => d?.kind === 'Service' && d.metadata?.name === mapping?.spec.serviceName)
    const slice = docs.find((d) => d?.kind === 'EndpointSlice')
    if (!mapping || !service || !slice) return undefined
    return {
      dir,
      mapping,
      serviceName: mapping.spec.serviceName,
      clusterIP: service.spec?.clusterIP,
      sliceName: slice.metadata!.name!,
      sliceAddresses: (slice.endpoints ?? []).flatMap((e) => e.addresses),
    }
  }
  const examples = await fromDir('examples').catch(() => undefined)
  if (examples) return examples
  const dir = join(scratch, 'manifests')
  await rm(dir, {recursive: true, force: true})
  await mkdir(dir)
  await writeFile(join(dir, 'echo.yaml'), FIXTURE)
  return (await fromDir(dir))!
}

describe('test API server with the real kubectl', function () {
  this.timeout(60_000)
  let server: ApiServer
  let scratch: string
  let manifests: Manifests
  let base: string[]

  const kubectl = (...args: string[]): Promise<Run> =>
    new Promise((resolve) => {
      execFile('kubectl', [...base, ...args], {timeout: 30_000}, (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0
        resolve({code, stdout, stderr})
      })
    })

  const ok = async (...args: string[]): Promise<string> => {
    const run = await kubectl(...args)
    if (run.code !== 0) throw new Error(`kubectl ${args.join(' ')} exited ${run.code}: ${run.stderr}`)
    return run.stdout
  }

  before(async function () {
    requireNeeds(this, 'the e2e test of the API server', {tools: ['kubectl']})
    scratch = await mkdtemp(join(tmpdir(), 'smartnat-kubectl-'))
    server = await startApiServer()
    const kubeconfig = join(scratch, 'kubeconfig')
    await server.writeKubeconfig(kubeconfig)
    // A fresh discovery cache per run: kubectl caches discovery per host:port, and ports are reused.
    base = ['--kubeconfig', kubeconfig, '--cache-dir', join(scratch, 'cache'), '--request-timeout', '20s']
    manifests = await loadManifests(scratch)
  })

  after(async function () {
    await server?.stop()
    if (scratch) await rm(scratch, {recursive: true, force: true})
  })

  it('applies the Mapping CRD, which then shows up in discovery', async function () {
    expect(await ok('apply', '-f', 'crds/mapping.yaml')).to.equal('customresourcedefinition.apiextensions.k8s.io/mappings.smartnat.aureacentral.com created\n')
    const resources = await ok('api-resources', '--api-group', 'smartnat.aureacentral.com', '--no-headers')
    expect(resources.trim().split(/\s+/)).to.deep.equal(['mappings', 'smartnat.aureacentral.com/v1alpha1', 'true', 'Mapping'])
    expect(await ok('apply', '-f', 'crds/mapping.yaml')).to.contain('unchanged')
  })

  it('applies Mappings, Services and EndpointSlices, and re-applying changes nothing', async function () {
    const created = await ok('apply', '-f', manifests.dir)
    expect(created).to.contain(`mapping.smartnat.aureacentral.com/${manifests.mapping.metadata.name} created`)
    expect(created).to.contain(`service/${manifests.serviceName} created`)
    expect(created).to.contain(`endpointslice.discovery.k8s.io/${manifests.sliceName} created`)
    const again = (await ok('apply', '-f', manifests.dir)).trim().split('\n')
    expect(again.every((line) => line.endsWith(' unchanged')), again.join('\n')).to.equal(true)
  })

  it('prints Mappings with the CRD printer columns', async function () {
    const out = await ok('get', 'mappings')
    const [header, ...rows] = out.trim().split('\n')
    expect(header!.trim().split(/\s{2,}/)).to.deep.equal(['NAME', 'ADDRESSES', 'SERVICE', 'PORTS', 'VALID', 'AGE'])
    const m = manifests.mapping
    const row = rows.find((r) => r.startsWith(`${m.metadata.name} `))
    expect(row, out).to.not.equal(undefined)
    const cells = row!.trim().split(/\s{2,}/)
    expect(cells.slice(0, 4)).to.deep.equal([m.metadata.name, JSON.stringify(m.spec.addresses), m.spec.serviceName, String(m.spec.ports[0]!.port)])
    expect(cells[4]).to.match(/^\d+s$/)
  })

  it('returns the stored Mapping as YAML with server-set metadata', async function () {
    const m = manifests.mapping
    const got = parse(await ok('get', 'mapping', m.metadata.name, '-o', 'yaml')) as ExampleMapping & {metadata: Record<string, unknown>}
    expect(got.spec).to.deep.equal(m.spec)
    expect(got.metadata.generation).to.equal(1)
    expect(got.metadata.uid).to.match(/^[0-9a-f-]{36}$/)
    expect(got.metadata.resourceVersion).to.match(/^\d+$/)
    expect(got.metadata.annotations).to.have.property('kubectl.kubernetes.io/last-applied-configuration')
  })

  it('merge-patches the spec, bumping generation, and streams the change to kubectl get -w', async function () {
    const name = manifests.mapping.metadata.name
    const watcher = spawn('kubectl', [...base, 'get', 'mapping', name, '--watch', '--output-watch-events', '-o', 'custom-columns=EVENT:.type,SERVICE:.object.spec.serviceName', '--no-headers'])
    let watched = ''
    watcher.stdout.on('data', (chunk: Buffer) => {
      watched += chunk.toString()
    })
    try {
      const deadline = Date.now() + 10_000
      while (!watched.includes('ADDED') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
      expect(await ok('patch', 'mapping', name, '--type', 'merge', '-p', '{"spec":{"serviceName":"patched-service"}}'))
        .to.equal(`mapping.smartnat.aureacentral.com/${name} patched\n`)
      while (!watched.includes('patched-service') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    } finally {
      watcher.kill()
    }
    expect(watched.trim().split('\n').map((l) => l.trim().split(/\s+/))).to.deep.equal([
      ['ADDED', manifests.mapping.spec.serviceName],
      ['MODIFIED', 'patched-service'],
    ])
    expect(await ok('get', 'mapping', name, '-o', 'jsonpath={.metadata.generation} {.spec.serviceName}')).to.equal('2 patched-service')
  })

  it('patches the status subresource, which shows in the Valid column and leaves spec and generation alone', async function () {
    const name = manifests.mapping.metadata.name
    const status = {
      status: {
        invalid: 'no',
        observedGeneration: 2,
        conditions: [{type: 'Valid', status: 'True', reason: 'Valid', message: 'configured', lastTransitionTime: '2025-01-01T00:00:00Z'}],
      },
      spec: {serviceName: 'ignored-by-status'},
    }
    expect(await ok('patch', 'mapping', name, '--subresource=status', '--type', 'merge', '-p', JSON.stringify(status)))
      .to.equal(`mapping.smartnat.aureacentral.com/${name} patched\n`)
    expect(await ok('get', 'mapping', name, '-o', 'jsonpath={.metadata.generation} {.spec.serviceName} {.status.invalid}')).to.equal('2 patched-service no')
    const row = (await ok('get', 'mapping', name, '--no-headers', '-o', 'wide')).trim().split(/\s{2,}/)
    expect(row.slice(4, 6)).to.deep.equal(['True', 'no'])
    const ignored = await ok('patch', 'mapping', name, '--type', 'merge', '-p', '{"status":{"invalid":"written to the main resource"}}')
    expect(ignored).to.equal(`mapping.smartnat.aureacentral.com/${name} patched (no change)\n`)
  })

  it('rejects invalid Mappings with the fields named, and unknown fields under strict validation', async function () {
    const bad = join(scratch, 'bad.yaml')
    await writeFile(bad, 'apiVersion: smartnat.aureacentral.com/v1alpha1\nkind: Mapping\nmetadata: {name: bad}\nspec: {addresses: [198.18.0.999], serviceName: web, mode: nat, ports: [{port: 0}]}\n')
    const invalid = await kubectl('apply', '-f', bad)
    expect(invalid.code).to.not.equal(0)
    expect(invalid.stderr).to.contain('The Mapping "bad" is invalid:')
    expect(invalid.stderr).to.contain('spec.addresses[0]: Invalid value: "198.18.0.999": spec.addresses[0] in body must be of type ipv4: "198.18.0.999"')
    expect(invalid.stderr).to.contain('spec.mode: Unsupported value: "nat": supported values: "service", "direct"')
    expect(invalid.stderr).to.contain('spec.ports[0].port: Invalid value: 0: spec.ports[0].port in body should be greater than or equal to 1')
    await writeFile(bad, 'apiVersion: smartnat.aureacentral.com/v1alpha1\nkind: Mapping\nmetadata: {name: bad}\nspec: {addresses: [198.18.0.9], serviceName: web, ports: [{port: 80}], colour: red}\n')
    const unknown = await kubectl('apply', '-f', bad)
    expect(unknown.code).to.not.equal(0)
    expect(unknown.stderr).to.contain('strict decoding error: unknown field "spec.colour"')
    expect((await kubectl('get', 'mapping', 'bad')).stderr).to.contain('mappings.smartnat.aureacentral.com "bad" not found')
  })

  it('explains Mapping fields from the published OpenAPI schema', async function () {
    const out = await ok('explain', 'mapping.spec.ports')
    expect(out).to.contain('KIND:       Mapping')
    // A port left out is allocated: neither field of a port is required.
    expect(out).to.contain('port\t<integer>')
    expect(out).to.contain('protocol\t<string>')
    expect(await ok('explain', 'mapping.spec')).to.contain('addressPool\t<string>')
  })

  it('server-side applies a Mapping', async function () {
    const ssa = join(scratch, 'ssa.yaml')
    await writeFile(ssa, 'apiVersion: smartnat.aureacentral.com/v1alpha1\nkind: Mapping\nmetadata: {name: ssa}\nspec: {addresses: [198.18.0.20], serviceName: web, ports: [{port: 443, protocol: TCP}]}\n')
    expect(await ok('apply', '--server-side', '-f', ssa)).to.equal('mapping.smartnat.aureacentral.com/ssa serverside-applied\n')
    expect(await ok('get', 'mapping', 'ssa', '-o', 'jsonpath={.spec.ports[0].port}')).to.equal('443')
  })

  it('lists Services and EndpointSlices in all namespaces', async function () {
    const out = await ok('get', 'services,endpointslices', '-A')
    const lines = out.split('\n')
    const svc = lines.find((l) => l.includes(`service/${manifests.serviceName} `))
    expect(svc, out).to.not.equal(undefined)
    expect(svc!.trim().split(/\s+/).slice(0, 3)).to.deep.equal(['default', `service/${manifests.serviceName}`, 'ClusterIP'])
    if (manifests.clusterIP) expect(svc).to.contain(` ${manifests.clusterIP} `)
    expect(lines.some((l) => /^default\s+service\/kubernetes\s+ClusterIP\s+10\.96\.0\.1\s/.test(l)), out).to.equal(true)
    const slice = lines.find((l) => l.includes(`endpointslice.discovery.k8s.io/${manifests.sliceName} `))
    expect(slice, out).to.not.equal(undefined)
    expect(slice).to.contain(manifests.sliceAddresses.slice(0, 3).join(','))
  })

  it('deletes a Mapping and then reports it missing', async function () {
    const name = manifests.mapping.metadata.name
    expect(await ok('delete', 'mapping', name)).to.equal(`mapping.smartnat.aureacentral.com "${name}" deleted\n`)
    const gone = await kubectl('get', 'mapping', name)
    expect(gone.code).to.not.equal(0)
    expect(gone.stderr).to.contain(`Error from server (NotFound): mappings.smartnat.aureacentral.com "${name}" not found`)
  })

  it('holds a Mapping with a finalizer as being deleted, bumping its generation, until a JSON patch removes the finalizer', async function () {
    const file = join(scratch, 'held.yaml')
    await writeFile(file, `apiVersion: smartnat.aureacentral.com/v1alpha1
kind: Mapping
metadata: {name: held, namespace: default, finalizers: [example.com/other, mapping.finalizers.aureacentral.com]}
spec: {addresses: [198.18.0.20], serviceName: ${manifests.serviceName}, ports: [{port: 80}]}
`)
    await ok('apply', '-f', file)
    expect(await ok('delete', 'mapping', 'held', '--wait=false')).to.equal('mapping.smartnat.aureacentral.com "held" deleted\n')
    const held = parse(await ok('get', 'mapping', 'held', '-o', 'yaml')) as {metadata: {deletionTimestamp?: string; generation: number}}
    expect(held.metadata.deletionTimestamp).to.match(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$/)
    expect(held.metadata.generation).to.equal(2)
    const stale = await kubectl('patch', 'mapping', 'held', '--type=json', '-p', JSON.stringify([
      {op: 'test', path: '/metadata/finalizers', value: ['mapping.finalizers.aureacentral.com']},
      {op: 'remove', path: '/metadata/finalizers/0'},
    ]))
    expect(stale.code).to.not.equal(0)
    expect(stale.stderr).to.contain('The request is invalid')
    await ok('patch', 'mapping', 'held', '--type=json', '-p', JSON.stringify([
      {op: 'test', path: '/metadata/finalizers', value: ['example.com/other', 'mapping.finalizers.aureacentral.com']},
      {op: 'remove', path: '/metadata/finalizers/1'},
    ]))
    expect((await ok('get', 'mapping', 'held', '-o', 'jsonpath={.metadata.finalizers}'))).to.equal('["example.com/other"]')
    await ok('patch', 'mapping', 'held', '--type=json', '-p', JSON.stringify([{op: 'remove', path: '/metadata/finalizers'}]))
    const gone = await kubectl('get', 'mapping', 'held')
    expect(gone.stderr).to.contain('"held" not found')
  })

  it('serves coordination.k8s.io/v1 Leases: discovery, create, the Holder column, replace, and MicroTime times only', async function () {
    const resources = await ok('api-resources', '--api-group', 'coordination.k8s.io', '--no-headers')
    expect(resources.trim().split(/\s+/)).to.deep.equal(['leases', 'coordination.k8s.io/v1', 'true', 'Lease'])
    const lease = (renewTime: string) => `apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: smartnat-edge-1, namespace: default, labels: {smartnat.aureacentral.com/host-lease: "true"}}
spec: {holderIdentity: edge-1, leaseDurationSeconds: 40, renewTime: "${renewTime}"}
`
    const file = join(scratch, 'lease.yaml')
    await writeFile(file, lease('2026-01-01T00:00:00.123456Z'))
    expect(await ok('create', '-f', file)).to.equal('lease.coordination.k8s.io/smartnat-edge-1 created\n')
    const [header, row] = (await ok('get', 'lease', 'smartnat-edge-1')).trim().split('\n')
    expect(header!.trim().split(/\s+/)).to.deep.equal(['NAME', 'HOLDER', 'AGE'])
    expect(row!.trim().split(/\s+/).slice(0, 2)).to.deep.equal(['smartnat-edge-1', 'edge-1'])
    expect(await ok('get', 'leases', '-l', 'smartnat.aureacentral.com/host-lease=true', '-o', 'name')).to.equal('lease.coordination.k8s.io/smartnat-edge-1\n')
    await writeFile(file, lease('2026-01-01T00:00:10.000000Z'))
    expect(await ok('replace', '-f', file)).to.equal('lease.coordination.k8s.io/smartnat-edge-1 replaced\n')
    expect(await ok('get', 'lease', 'smartnat-edge-1', '-o', 'jsonpath={.spec.renewTime}')).to.equal('2026-01-01T00:00:10.000000Z')
    await writeFile(file, lease('2026-01-01T00:00:20.000Z'))
    const millis = await kubectl('replace', '-f', file)
    expect(millis.code).to.not.equal(0)
    expect(millis.stderr).to.contain('Lease in version "v1" cannot be handled as a Lease: parsing time "2026-01-01T00:00:20.000Z" as "2006-01-02T15:04:05.000000Z07:00"')
    await ok('delete', 'lease', 'smartnat-edge-1')
  })

  it('serves Namespaces with labels: create, label, select by label, and list them for a pool\'s selector', async function () {
    const file = join(scratch, 'namespace.yaml')
    await writeFile(file, 'apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n')
    expect(await ok('create', '-f', file)).to.equal('namespace/shop created\n')
    expect(await ok('label', 'namespace', 'shop', 'tier=edge')).to.equal('namespace/shop labeled\n')
    expect(await ok('get', 'namespaces', '-l', 'tier=edge', '-o', 'name')).to.equal('namespace/shop\n')
    expect(await ok('get', 'namespaces', '-l', 'tier in (core)', '-o', 'name')).to.equal('')
    expect(await ok('label', 'namespace', 'shop', 'tier=core', '--overwrite')).to.equal('namespace/shop labeled\n')
    expect(await ok('get', 'namespace', 'shop', '-o', 'jsonpath={.metadata.labels.tier}')).to.equal('core')
    await ok('delete', 'namespace', 'shop')
  })

  it('serves cluster-scoped AddressPools with their printer columns and status subresource', async function () {
    expect(await ok('apply', '-f', 'crds/addresspool.yaml')).to.equal('customresourcedefinition.apiextensions.k8s.io/addresspools.smartnat.aureacentral.com created\n')
    const file = join(scratch, 'pool.yaml')
    await writeFile(file, 'apiVersion: smartnat.aureacentral.com/v1alpha1\nkind: AddressPool\nmetadata: {name: edge}\nspec:\n  addresses: [198.18.0.32/30, 198.18.0.40-198.18.0.41]\n  autoAssign: false\n')
    expect(await ok('apply', '-f', file)).to.equal('addresspool.smartnat.aureacentral.com/edge created\n')
    await ok('patch', 'addresspool', 'edge', '--subresource=status', '--type', 'merge', '-p', JSON.stringify({status: {inUse: 1, free: 5}}))
    const [header, row] = (await ok('get', 'addresspools')).trim().split('\n')
    expect(header!.trim().split(/\s{2,}/)).to.deep.equal(['NAME', 'ADDRESSES', 'AUTO', 'IN-USE', 'FREE', 'AGE'])
    expect(row!.trim().split(/\s{2,}/).slice(0, 5)).to.deep.equal(['edge', '["198.18.0.32/30","198.18.0.40-198.18.0.41"]', 'false', '1', '5'])
    const namespaced = await kubectl('get', 'addresspool', 'edge', '-n', 'kube-system', '-o', 'jsonpath={.metadata.namespace}')
    expect(namespaced).to.include({code: 0, stdout: ''})
    await ok('delete', 'addresspool', 'edge')
  })

  it('serves LoadBalancer Services: loadBalancerClass checked and fixed, EXTERNAL-IP from the status subresource', async function () {
    const file = join(scratch, 'lb.yaml')
    const service = (type: string, lbClass: string) => `apiVersion: v1\nkind: Service\nmetadata: {name: web-lb, namespace: default}\nspec:\n  type: ${type}\n  loadBalancerClass: ${lbClass}\n  ports: [{name: http, port: 80, targetPort: 8080}]\n`
    await writeFile(file, service('ClusterIP', 'smartnat.aureacentral.com/edge'))
    const notLb = await kubectl('apply', '-f', file)
    expect(notLb.code).to.not.equal(0)
    expect(notLb.stderr).to.contain("spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'")
    await writeFile(file, service('LoadBalancer', 'smartnat.aureacentral.com/edge'))
    expect(await ok('apply', '-f', file)).to.equal('service/web-lb created\n')
    const external = async () => (await ok('get', 'svc', 'web-lb', '--no-headers')).trim().split(/\s+/)[3]
    expect(await external()).to.equal('<pending>')
    const ingress = [{ip: '198.18.0.33', ipMode: 'Proxy', ports: [{port: 80, protocol: 'TCP'}]}]
    await ok('patch', 'svc', 'web-lb', '--subresource=status', '--type', 'merge', '-p', JSON.stringify({status: {loadBalancer: {ingress}}}))
    expect(await external()).to.equal('198.18.0.33')
    expect(JSON.parse(await ok('get', 'svc', 'web-lb', '-o', 'jsonpath={.status.loadBalancer.ingress}'))).to.deep.equal(ingress)
    await writeFile(file, service('LoadBalancer', 'example.com/other'))
    const changed = await kubectl('apply', '-f', file)
    expect(changed.code).to.not.equal(0)
    expect(changed.stderr).to.contain('spec.loadBalancerClass: Invalid value: "example.com/other": may not change once set')
    await ok('delete', 'svc', 'web-lb')
  })

  it('works with legacy discovery too, when aggregated discovery is not offered', async function () {
    const legacy = await startApiServer({aggregatedDiscovery: false, crds: ['crds/mapping.yaml']})
    try {
      const kubeconfig = join(scratch, 'legacy-kubeconfig')
      await legacy.writeKubeconfig(kubeconfig)
      const run = (...args: string[]) => new Promise<string>((resolve, reject) => {
        execFile('kubectl', ['--kubeconfig', kubeconfig, '--cache-dir', join(scratch, 'legacy-cache'), ...args], {timeout: 30_000}, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)))
      })
      expect(await run('get', 'mappings,services', '-A', '-o', 'name')).to.equal('service/kubernetes\n')
      expect(await run('api-resources', '--api-group', 'discovery.k8s.io', '-o', 'name')).to.equal('endpointslices.discovery.k8s.io\n')
    } finally {
      await legacy.stop()
    }
  })

  it('deleting the CRD deletes its Mappings and stops serving them', async function () {
    await ok('delete', '-f', 'crds/mapping.yaml')
    expect(server.store.list('smartnat.aureacentral.com/mappings')).to.deep.equal([])
    const after = await kubectl('get', 'mappings')
    expect(after.code).to.not.equal(0)
  })
})
