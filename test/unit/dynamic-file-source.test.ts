import {expect} from 'chai'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {FILE_NOT_ALLOCATED} from '../../src/lib/allocate/pending.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {oneShotSource} from '../../src/lib/source/oneshot.js'

const MANIFESTS = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec: {clusterIP: 10.96.0.20, ports: [{name: http, port: 80, protocol: TCP, targetPort: 8080}]}
---
apiVersion: smartnat.aureacentral.com/v1alpha1
kind: AddressPool
metadata: {name: edge}
spec: {addresses: [198.18.0.10-198.18.0.11]}
---
apiVersion: smartnat.aureacentral.com/v1alpha1
kind: Mapping
metadata: {name: recorded, namespace: default, creationTimestamp: "2025-01-01T00:00:00Z"}
spec: {addressPool: edge, serviceName: web, ports: [{servicePort: 80}]}
status:
  allocated: {pool: edge, addresses: [198.18.0.10], ports: [{protocol: tcp, servicePort: 80, port: 30000}]}
---
apiVersion: smartnat.aureacentral.com/v1alpha1
kind: Mapping
metadata: {name: fresh, namespace: default, creationTimestamp: "2025-01-02T00:00:00Z"}
spec: {addressPool: edge, serviceName: web, ports: [{servicePort: 80}]}
`

describe('the file source and Mappings that ask for an address or a port', () => {
  let dir: string

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-dyn-file-'))
    await writeFile(join(dir, 'all.yaml'), MANIFESTS)
  })

  after(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('serves a Mapping on the status.allocated its file carries, and allocates nothing for one without', async () => {
    const snapshot = await (await oneShotSource({fromFile: dir})).load()
    const host = {interfaces: [{name: 'eth1', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}, {address: '198.18.0.11' as Ipv4, prefixLength: 24}]}]}
    const {verdicts, model} = plan(snapshot, host, DEFAULT_PLAN_OPTIONS)
    expect(verdicts.map((v) => [v.name, v.invalid])).to.deep.equal([['fresh', FILE_NOT_ALLOCATED], ['recorded', 'no']])
    expect(model.mappings.flatMap((m) => m.endpoints.map((e) => `${m.name} ${e.address}:${e.port}/${e.protocol} -> ${e.targetIP}:${e.targetPort}`))).to.deep.equal(['recorded 198.18.0.10:30000/tcp -> 10.96.0.20:80'])
  })
})
