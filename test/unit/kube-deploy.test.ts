/**
 * The deployment files: kinds and API versions, least-privilege RBAC, the DaemonSet's host access, and a
 * systemd unit and environment file that match the CLI's flags. (The test API server serves none of
 * ServiceAccount, RBAC or DaemonSet, so these are checked as documents.)
 */
import {readFile} from 'node:fs/promises'
import {expect} from 'chai'
import {parseAllDocuments} from 'yaml'
import {hostFlags, leaseFlags, planFlags} from '../../src/cli/flags.js'
import {DEFAULT_LEASE_NAMESPACE} from '../../src/lib/source/kube/leases.js'

type Doc = {apiVersion: string; kind: string; metadata: {name: string; namespace?: string}; [k: string]: unknown}

async function documents(file: string): Promise<Doc[]> {
  return parseAllDocuments(await readFile(file, 'utf8')).map((d) => {
    expect(d.errors, `${file}: ${d.errors.join('; ')}`).to.deep.equal([])
    return d.toJS() as Doc
  })
}

describe('deploy manifests', function () {
  it('rbac.yaml grants exactly what smartnat uses to its ServiceAccount', async function () {
    const docs = await documents('deploy/rbac.yaml')
    expect(docs.map((d) => `${d.apiVersion} ${d.kind} ${d.metadata.namespace ?? ''}/${d.metadata.name}`)).to.deep.equal([
      'v1 Namespace /smartnat-system',
      'v1 ServiceAccount smartnat-system/smartnat',
      'rbac.authorization.k8s.io/v1 ClusterRole /smartnat',
      'rbac.authorization.k8s.io/v1 ClusterRoleBinding /smartnat',
      'rbac.authorization.k8s.io/v1 Role smartnat-system/smartnat-leases',
      'rbac.authorization.k8s.io/v1 RoleBinding smartnat-system/smartnat-leases',
    ])
    const rules = (docs[2]!.rules as {apiGroups: string[]; resources: string[]; verbs: string[]}[])
      .flatMap((r) => r.apiGroups.flatMap((g) => r.resources.map((res) => `${g || 'core'}/${res}: ${[...r.verbs].sort().join(',')}`)))
    expect(rules.sort()).to.deep.equal([
      'core/events: create,patch',
      'core/namespaces: get,list,watch',
      'core/services/status: patch',
      'core/services: get,list,watch',
      'discovery.k8s.io/endpointslices: get,list,watch',
      'events.k8s.io/events: create,patch',
      'smartnat.aureacentral.com/addresspools/status: patch',
      'smartnat.aureacentral.com/addresspools: get,list,watch',
      'smartnat.aureacentral.com/mappings/status: patch,update',
      'smartnat.aureacentral.com/mappings: get,list,patch,watch',
    ])
    expect(docs[3]).to.deep.include({
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'smartnat'},
      subjects: [{kind: 'ServiceAccount', name: 'smartnat', namespace: 'smartnat-system'}],
    })
    // The Leases only in the namespace where every host keeps its own (the default --lease-namespace).
    expect(docs[4]!.rules).to.deep.equal([{apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'list', 'create', 'update']}])
    expect(docs[5]).to.deep.include({
      roleRef: {apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'smartnat-leases'},
      subjects: [{kind: 'ServiceAccount', name: 'smartnat', namespace: 'smartnat-system'}],
    })
    expect(docs[4]!.metadata.namespace).to.equal(DEFAULT_LEASE_NAMESPACE)
  })

  it('daemonset.yaml runs `smartnat watch` on edge nodes in the host network with NET_ADMIN and NET_RAW', async function () {
    const [ds, ...rest] = await documents('deploy/daemonset.yaml')
    expect(rest).to.deep.equal([])
    expect([ds!.apiVersion, ds!.kind, ds!.metadata.namespace]).to.deep.equal(['apps/v1', 'DaemonSet', 'smartnat-system'])
    const spec = (ds!.spec as {template: {spec: Record<string, unknown>}; selector: {matchLabels: object}}).template.spec
    expect(spec).to.include({serviceAccountName: 'smartnat', hostNetwork: true, dnsPolicy: 'ClusterFirstWithHostNet'})
    expect(spec.nodeSelector).to.deep.equal({'smartnat.aureacentral.com/edge': 'true'})
    expect(spec.tolerations).to.deep.equal([{key: 'smartnat.aureacentral.com/edge', operator: 'Exists', effect: 'NoSchedule'}])
    const [container] = spec.containers as {args: string[]; securityContext: {capabilities: {add: string[]; drop: string[]}}; env: {name: string}[]}[]
    expect(container!.args[0]).to.equal('watch')
    expect(container!.securityContext.capabilities).to.deep.equal({drop: ['ALL'], add: ['NET_ADMIN', 'NET_RAW']})
    const env = container!.env as {name: string; value: string}[]
    for (const {name} of env.filter((e) => e.name !== 'MALLOC_ARENA_MAX')) expect(name).to.match(/^SNCTRLR_/)
    // glibc's allocator keeps fewer arenas: memory outside V8's heap (docs/benchmarks.md, "The watch's peak, round 3").
    expect(env).to.deep.include({name: 'MALLOC_ARENA_MAX', value: '2'})
  })

  it('smartnat.service runs `smartnat watch` after the network is up, from /etc/smartnat/smartnat.env, restarting on failure', async function () {
    const lines = (await readFile('deploy/smartnat.service', 'utf8')).split('\n')
    for (const line of ['After=network-online.target', 'Wants=network-online.target', 'EnvironmentFile=/etc/smartnat/smartnat.env', 'ExecStart=/usr/bin/smartnat watch', 'Restart=on-failure', 'Environment=MALLOC_ARENA_MAX=2']) {
      expect(lines).to.include(line)
    }
  })

  it('smartnat.env.example names every environment variable the CLI reads, and KUBECONFIG', async function () {
    const text = await readFile('deploy/smartnat.env.example', 'utf8')
    const named = new Set([...text.matchAll(/^#?([A-Z_]+)=/gm)].map((m) => m[1]))
    const flagEnv = Object.values({...hostFlags, ...planFlags, ...leaseFlags}).map((f) => (f as {env?: string}).env).filter((e): e is string => e !== undefined)
    expect(flagEnv).to.have.length.of.at.least(7)
    expect([...named].sort()).to.deep.equal([...flagEnv, 'KUBECONFIG'].sort())
  })
})
