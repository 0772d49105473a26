/**
 * Status writeback: what each Mapping is told (pure), and that it reaches the API server as a merge patch
 * of the status subresource only when something changed, with each instance owning its own addresses.
 */
import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import type {MappingResource, MappingStatus} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo, type MappingVerdict} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {listSnapshot} from '../../src/lib/source/kube/source.js'
import {kubeMappingStatusApi, type MappingStatusApi} from '../../src/lib/source/kube/writers.js'
import {API_WRITES_IN_FLIGHT} from '../../src/lib/sync/bounded.js'
import type {SyncReport} from '../../src/lib/sync/once.js'
import {apiPublisher} from '../../src/lib/sync/publish.js'
import {desiredStatus, SettledStatuses, ownAddresses, writeStatuses} from '../../src/lib/sync/status.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'
import {WEB_SERVICE, serviceManifests} from '../support/mappings.js'

const T0 = new Date('2025-01-01T00:00:00Z')
const T1 = new Date('2025-01-01T00:05:00Z')

function host(...addresses: string[]): HostInfo {
  return {interfaces: [{name: 'ext0', addresses: addresses.map((a) => ({address: a as Ipv4, prefixLength: 24}))}]}
}

function verdict(fields: Partial<MappingVerdict> = {}): MappingVerdict {
  return {
    namespace: 'default',
    name: 'web',
    generation: 3,
    valid: true,
    invalid: 'no',
    serviceVIP: '10.96.0.20' as Ipv4,
    configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1' as Ipv4]}},
    notLocalAddresses: [],
    ...fields,
  }
}

function mapping(status?: MappingStatus, generation = 3): MappingResource {
  return {metadata: {namespace: 'default', name: 'web', generation, resourceVersion: '7'}, spec: {}, ...(status ? {status} : {})}
}

describe('status writeback', function () {
  describe('desiredStatus', function () {
    const own = ownAddresses(host('198.18.0.10'))

    it('tells a fresh Mapping everything, with both conditions stamped now', function () {
      const {status, patch} = desiredStatus(mapping(), verdict(), own, T0)
      const conditions = [
        {type: 'Valid', status: 'True', reason: 'Valid', message: 'spec is valid and its Service resolves', lastTransitionTime: '2025-01-01T00:00:00Z', observedGeneration: 3},
        {type: 'Ready', status: 'True', reason: 'Configured', message: 'serving on 198.18.0.10', lastTransitionTime: '2025-01-01T00:00:00Z', observedGeneration: 3},
      ]
      expect(status).to.deep.equal({
        invalid: 'no',
        serviceVIP: '10.96.0.20',
        configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1']}},
        conditions,
        observedGeneration: 3,
      })
      expect(patch).to.deep.equal({
        invalid: 'no',
        serviceVIP: '10.96.0.20',
        conditions,
        observedGeneration: 3,
        configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1']}},
      })
    })

    it('has nothing to patch when the object already says it', function () {
      const {status} = desiredStatus(mapping(), verdict(), own, T0)
      expect(desiredStatus(mapping(status), verdict(), own, T1).patch).to.equal(undefined)
    })

    it('keeps lastTransitionTime while a condition keeps its status, and stamps it when the status flips', function () {
      const {status} = desiredStatus(mapping(), verdict(), own, T0)
      const morePods = verdict({generation: 4, configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1', '198.19.0.2'] as Ipv4[]}}})
      const same = desiredStatus(mapping(status, 4), morePods, own, T1)
      expect(same.status.conditions!.map((c) => [c.type, c.lastTransitionTime, c.observedGeneration])).to.deep.equal([
        ['Valid', '2025-01-01T00:00:00Z', 4],
        ['Ready', '2025-01-01T00:00:00Z', 4],
      ])
      const noPods = desiredStatus(mapping(status), verdict({configuredAddresses: {'198.18.0.10': {podIPs: []}}}), own, T1)
      expect(noPods.status.conditions!.map((c) => [c.type, c.status, c.reason, c.lastTransitionTime])).to.deep.equal([
        ['Valid', 'True', 'Valid', '2025-01-01T00:00:00Z'],
        ['Ready', 'False', 'NoReadyEndpoints', '2025-01-01T00:05:00Z'],
      ])
      expect(noPods.patch).to.have.keys(['conditions', 'configuredAddresses'])
    })

    it('marks the keys it writes with its host name, and removes them once the address has left the host', function () {
      const {status} = desiredStatus(mapping(), verdict(), own, T0, 'edge-1')
      expect(status.configuredAddresses).to.deep.equal({'198.18.0.10': {podIPs: ['198.19.0.1'], host: 'edge-1'}})
      const withoutAddress = new Set<string>()
      const {status: next, patch} = desiredStatus(mapping(status), verdict({configuredAddresses: {}, notLocalAddresses: ['198.18.0.10' as Ipv4]}), withoutAddress, T1, 'edge-1')
      expect(patch!.configuredAddresses).to.deep.equal({'198.18.0.10': null})
      expect(next.configuredAddresses).to.equal(undefined)
      expect(next.conditions!.find((c) => c.type === 'Ready')!.status).to.equal('False')
    })

    it('leaves keys another host wrote for an address it does not have', function () {
      const current = mapping({invalid: 'no', configuredAddresses: {'198.18.0.99': {podIPs: ['198.19.0.1'], host: 'edge-2'}}})
      const {patch} = desiredStatus(current, verdict({configuredAddresses: {}}), new Set<string>(), T0, 'edge-1')
      expect(patch?.configuredAddresses).to.equal(undefined)
    })

    it('removes only its own stale keys (null in the patch) and leaves other instances\' keys alone', function () {
      const current = mapping({
        invalid: 'no',
        serviceVIP: '10.96.0.20',
        configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1']}, '198.18.0.11': {podIPs: ['198.19.0.1']}},
      })
      const {status, patch} = desiredStatus(current, verdict({configuredAddresses: {}}), own, T0)
      expect(patch!.configuredAddresses).to.deep.equal({'198.18.0.10': null})
      expect(status.configuredAddresses).to.deep.equal({'198.18.0.11': {podIPs: ['198.19.0.1']}})
      // Another instance still serves it, so it stays Ready.
      expect(status.conditions!.find((c) => c.type === 'Ready')!.status).to.equal('True')
    })

    const readiness: {desc: string; verdict: MappingVerdict; status?: MappingStatus; want: [string, string, string]}[] = [
      {
        desc: 'an invalid Mapping',
        verdict: verdict({valid: false, invalid: 'service "web" not found in namespace "default"', serviceVIP: undefined, configuredAddresses: {}}),
        want: ['False', 'Invalid', 'service "web" not found in namespace "default"'],
      },
      {
        desc: 'no address on any smartnat host',
        verdict: verdict({configuredAddresses: {}, notLocalAddresses: ['198.18.0.99' as Ipv4]}),
        want: ['False', 'NoLocalAddress', 'none of its addresses is on the external interfaces of a smartnat host'],
      },
      {
        desc: 'configured without ready pods',
        verdict: verdict({configuredAddresses: {'198.18.0.10': {podIPs: []}}}),
        want: ['False', 'NoReadyEndpoints', 'configured on 198.18.0.10, but the Service has no ready endpoints'],
      },
      {
        desc: 'mode direct with a port whose Service port has no endpoint',
        verdict: verdict({unservedPorts: [{protocol: 'tcp', port: 80}]}),
        want: ['False', 'NoReadyEndpoints', 'no ready endpoints for port 80; new connections are refused'],
      },
      {
        desc: 'mode direct with several such ports, one of them udp',
        verdict: verdict({configuredAddresses: {'198.18.0.10': {podIPs: []}}, unservedPorts: [{protocol: 'tcp', port: 53}, {protocol: 'tcp', port: 80}, {protocol: 'udp', port: 53}]}),
        want: ['False', 'NoReadyEndpoints', 'no ready endpoints for port 53, port 80, port 53/udp; new connections are refused'],
      },
      {
        desc: 'an address on an interface this host cannot serve',
        verdict: verdict({configuredAddresses: {}, faults: {'198.18.0.10': 'interface ext0: --gw-offset 1 gives 198.18.0.1, which is this host\'s own address'}}),
        want: ['False', 'HostFault', "198.18.0.10 not served: interface ext0: --gw-offset 1 gives 198.18.0.1, which is this host's own address"],
      },
      {
        desc: 'one address served, another with a fault another instance reported',
        verdict: verdict(),
        status: {configuredAddresses: {'198.18.0.12': {podIPs: [], host: 'edge-2', fault: 'forwarded traffic is dropped'}}},
        want: ['False', 'HostFault', '198.18.0.12 not served on edge-2: forwarded traffic is dropped'],
      },
      {
        desc: 'served only by another instance',
        verdict: verdict({configuredAddresses: {}}),
        status: {configuredAddresses: {'198.18.0.12': {podIPs: ['198.19.0.1']}}},
        want: ['True', 'Configured', 'serving on 198.18.0.12'],
      },
    ]
    for (const {desc, verdict: v, status, want} of readiness) {
      it(`Ready for ${desc}: ${want.slice(0, 2).join(' ')}`, function () {
        const ready = desiredStatus(mapping(status), v, own, T0).status.conditions!.find((c) => c.type === 'Ready')!
        expect([ready.status, ready.reason, ready.message]).to.deep.equal(want)
      })
    }

    it('says why an invalid Mapping is not configured and drops its serviceVIP', function () {
      const {status} = desiredStatus(mapping(), verdict(), own, T0)
      const reason = 'tcp/80 on 198.18.0.10 is already mapped by default/older'
      const {status: next, patch} = desiredStatus(mapping(status), verdict({valid: false, invalid: reason, serviceVIP: undefined, configuredAddresses: {}}), own, T1)
      expect(next.invalid).to.equal(reason)
      expect(next).to.not.have.property('serviceVIP')
      expect(patch).to.include({invalid: reason, serviceVIP: null})
      expect(next.conditions![0]).to.include({type: 'Valid', status: 'False', reason: 'Invalid', message: reason, lastTransitionTime: '2025-01-01T00:05:00Z'})
    })
  })

  describe('SettledStatuses', function () {
    it('holds a Mapping for the very verdict and context it was noted with, and forgets it once one is noted in another context', function () {
      const settled = new SettledStatuses()
      const [a, b] = [mapping(), mapping()]
      const [va, vb] = [verdict(), verdict()]
      settled.note(a, va, 'here')
      expect(settled.holds(a, va, 'here')).to.equal(true)
      expect(settled.holds(a, verdict(), 'here'), 'an equal verdict, another object').to.equal(false)
      expect(settled.holds(a, va, 'there'), 'another context').to.equal(false)
      expect(settled.holds(b, va, 'here'), 'another Mapping').to.equal(false)
      // One context at a time: what was noted in the one before is let go, not kept beside it.
      settled.note(b, vb, 'there')
      expect(settled.holds(b, vb, 'there')).to.equal(true)
      expect(settled.holds(a, va, 'here')).to.equal(false)
    })
  })

  describe('writeStatuses against the API server', function () {
    let server: ApiServer
    let requests: string[]
    let kc: KubeConfig
    let api: MappingStatusApi

    const statusPatches = () => requests.filter((r) => r.startsWith('PATCH ') && r.includes('/status') && r.includes('content-type=application/merge-patch+json'))
    const stored = (name = 'web') => server.api.get(server.types.mappings, 'default', name) as unknown as MappingResource

    beforeEach(async function () {
      requests = []
      server = await startApiServer({crds: ['crds/mapping.yaml'], log: (line) => requests.push(line)})
      kc = new KubeConfig()
      kc.loadFromString(server.kubeconfig())
      api = kubeMappingStatusApi(kc)
      server.createAll(serviceManifests(WEB_SERVICE))
      server.api.create(server.types.mappings, 'default', {
        metadata: {name: 'web'},
        spec: {addresses: ['198.18.0.10', '198.18.0.11'], serviceName: 'web', ports: [{port: 80}]},
      })
    })

    afterEach(async function () {
      await server.stop()
    })

    /** One sync of one instance: read the cluster, plan for its host, write statuses. */
    async function sync(instance: HostInfo, now = T0) {
      const snapshot = await listSnapshot(kc)
      const {verdicts} = plan(snapshot, instance, DEFAULT_PLAN_OPTIONS)
      return writeStatuses(api, snapshot.mappings, verdicts, instance, now)
    }

    it('patches the status once and writes nothing on a sync that changes nothing', async function () {
      const first = await sync(host('198.18.0.10'))
      expect(first).to.include({patched: 1, unchanged: 0, conflicts: 0, gone: 0, failed: 0})
      expect(statusPatches()).to.have.length(1)
      expect(stored().status).to.deep.include({invalid: 'no', serviceVIP: '10.96.0.20', configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1']}}, observedGeneration: 1})
      const rv = stored().metadata.resourceVersion

      const second = await sync(host('198.18.0.10'), T1)
      expect(second).to.include({patched: 0, unchanged: 1})
      expect(statusPatches()).to.have.length(1)
      expect(stored().metadata.resourceVersion).to.equal(rv)
    })

    it('compares a Mapping once while it and its verdict stay the very same objects (a watch pass after a change elsewhere)', async function () {
      const settled = new SettledStatuses()
      const instance = host('198.18.0.10')
      const first = await listSnapshot(kc)
      const {verdicts} = plan(first, instance, DEFAULT_PLAN_OPTIONS)
      expect(await writeStatuses(api, first.mappings, verdicts, instance, T0, undefined, undefined, undefined, settled)).to.include({patched: 1})
      // The object as the cache holds it after the write, with every read of its status counted.
      let reads = 0
      const written = stored()
      const watched = new Proxy(written, {get: (target, key, receiver) => (key === 'status' && reads++, Reflect.get(target, key, receiver))})
      const pass = (v = verdicts, on = instance) => writeStatuses(api, [watched], v, on, T1, undefined, undefined, undefined, settled)
      expect(await pass()).to.include({patched: 0, unchanged: 1})
      const compared = reads
      expect(compared, 'the first look compares').to.be.greaterThan(0)
      expect(await pass()).to.include({patched: 0, unchanged: 1})
      expect(await pass()).to.include({patched: 0, unchanged: 1})
      expect(reads, 'the same objects again: nothing compared').to.equal(compared)
      expect(await pass(verdicts.map((v) => ({...v})))).to.include({unchanged: 1})
      expect(reads, 'an equal verdict, but another object: compared').to.be.greaterThan(compared)
      const after = reads
      expect(await pass(verdicts, host('198.18.0.10', '198.18.0.11'))).to.include({unchanged: 1})
      expect(reads, 'other addresses on this host: compared').to.be.greaterThan(after)
      expect(statusPatches()).to.have.length(1)
    })

    it('shows the addresses of two instances side by side, and each removes only its own', async function () {
      const a = host('198.18.0.10')
      const b = host('198.18.0.11')
      await sync(a)
      await sync(b)
      expect(stored().status!.configuredAddresses).to.deep.equal({
        '198.18.0.10': {podIPs: ['198.19.0.1']},
        '198.18.0.11': {podIPs: ['198.19.0.1']},
      })
      // Each has seen the other's key: neither has anything left to write.
      expect((await sync(a)).patched + (await sync(b)).patched).to.equal(0)

      // The Mapping no longer lists a's address: a removes its key and leaves b's.
      server.api.patch(server.types.mappings, 'default', 'web', 'application/merge-patch+json', {spec: {addresses: ['198.18.0.11']}})
      expect(await sync(a)).to.include({patched: 1})
      // b agrees with what a wrote (generation 2, Ready from b's address), so it has nothing to write.
      expect(await sync(b)).to.include({patched: 0, unchanged: 1})
      expect(stored().status!.configuredAddresses).to.deep.equal({'198.18.0.11': {podIPs: ['198.19.0.1']}})
      expect(stored().status!.conditions!.find((c) => c.type === 'Ready')).to.include({status: 'True', message: 'serving on 198.18.0.11'})
    })

    it('keeps an address this host cannot serve under its key with the fault, so every instance agrees on Ready', async function () {
      // edge-1 has 198.18.0.10 as a /32: no other host of its subnet can be the gateway.
      const broken: HostInfo = {interfaces: [{name: 'ext0', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 32}]}]}
      const fixed = host('198.18.0.10')
      const other = host('198.18.0.11')
      const syncAs = async (instance: HostInfo, hostName: string) => {
        const snapshot = await listSnapshot(kc)
        return writeStatuses(api, snapshot.mappings, plan(snapshot, instance, DEFAULT_PLAN_OPTIONS).verdicts, instance, T0, hostName)
      }
      await syncAs(broken, 'edge-1')
      await syncAs(other, 'edge-2')
      const fault = 'interface ext0: --gw-offset 1 falls outside the hosts of 198.18.0.10/32 (198.18.0.10..198.18.0.10)'
      expect(stored().status!.configuredAddresses).to.deep.equal({
        '198.18.0.10': {podIPs: [], host: 'edge-1', fault},
        '198.18.0.11': {podIPs: ['198.19.0.1'], host: 'edge-2'},
      })
      expect(stored().status!.conditions!.find((c) => c.type === 'Ready')).to.include({
        status: 'False',
        reason: 'HostFault',
        message: `198.18.0.10 not served on edge-1: ${fault}`,
      })
      expect(stored().status).to.include({invalid: 'no'})
      // Both read Ready off the same keys: neither has anything left to write.
      expect((await syncAs(broken, 'edge-1')).patched + (await syncAs(other, 'edge-2')).patched).to.equal(0)

      expect(await syncAs(fixed, 'edge-1')).to.include({patched: 1})
      expect(stored().status!.configuredAddresses!['198.18.0.10']).to.deep.equal({podIPs: ['198.19.0.1'], host: 'edge-1'})
      expect(stored().status!.conditions!.find((c) => c.type === 'Ready')).to.include({status: 'True', message: 'serving on 198.18.0.10, 198.18.0.11'})
    })

    it('skips a Mapping deleted since the snapshot, and retries a conflict once with a fresh read', async function () {
      const snapshot = await listSnapshot(kc)
      const instance = host('198.18.0.10')
      const {verdicts} = plan(snapshot, instance, DEFAULT_PLAN_OPTIONS)

      // Someone else writes in between: the cached resourceVersion is stale.
      server.api.patch(server.types.mappings, 'default', 'web', 'application/merge-patch+json', {status: {configuredAddresses: {'198.18.0.11': {podIPs: []}}}}, {status: true})
      const raced = await writeStatuses(api, snapshot.mappings, verdicts, instance, T0)
      expect(raced).to.include({patched: 1, conflicts: 0})
      expect(requests.filter((r) => r.startsWith('GET /apis/smartnat.aureacentral.com/v1alpha1/namespaces/default/mappings/web '))).to.have.length(1)
      expect(Object.keys(stored().status!.configuredAddresses!).sort()).to.deep.equal(['198.18.0.10', '198.18.0.11'])

      server.api.delete(server.types.mappings, 'default', 'web')
      const gone = await writeStatuses(api, snapshot.mappings, verdicts, host('198.18.0.11'), T0)
      expect(gone).to.include({patched: 0, gone: 1, failed: 0})
    })

    it('says that the CRD has no status subresource when the Mapping exists but its status 404s', async function () {
      await server.stop()
      server = await startApiServer({crds: ['test/unit/fixtures/go-controller-crd.yaml'], log: (line) => requests.push(line)})
      kc = new KubeConfig()
      kc.loadFromString(server.kubeconfig())
      server.api.create(server.types.mappings, 'default', {metadata: {name: 'web'}, spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]}})
      const snapshot = await listSnapshot(kc)
      const instance = host('198.18.0.10')
      const result = await writeStatuses(kubeMappingStatusApi(kc), snapshot.mappings, plan(snapshot, instance, DEFAULT_PLAN_OPTIONS).verdicts, instance, T0)
      expect(result).to.include({patched: 0, gone: 0, failed: 1})
      expect(result.errors[0]!.message).to.match(
        /^mapping default\/web: writing status: HTTP 404 on its status subresource, yet the Mapping exists: the installed CRD has no status subresource \(the Go controller's CRD\?\); install smartnat's: kubectl apply -f \/.*\/crds\/mapping\.yaml$/,
      )
    })

    describe('status after a 409 is only what was planned', function () {
      /** Plans from the API as it is now; `between` changes the API after planning, before writing. */
      async function planThenWrite(between: () => void) {
        const snapshot = await listSnapshot(kc)
        const instance = host('198.18.0.10')
        const {verdicts} = plan(snapshot, instance, DEFAULT_PLAN_OPTIONS)
        expect(verdicts[0]!.generation).to.equal(1)
        between()
        return writeStatuses(api, snapshot.mappings, verdicts, instance, T0)
      }
      const reads = () => requests.filter((r) => r.startsWith('GET /apis/smartnat.aureacentral.com/v1alpha1/namespaces/default/mappings/web '))

      it('observedGeneration is the generation the verdict was planned from, not the one of the object written to', function () {
        const {status} = desiredStatus(mapping(undefined, 5), verdict({generation: 3}), ownAddresses(host('198.18.0.10')), T0)
        expect(status.observedGeneration).to.equal(3)
        expect(status.conditions!.map((c) => c.observedGeneration)).to.deep.equal([3, 3])
      })

      it('a spec updated between plan and write: the write is given up as a conflict and the next pass writes the new generation', async function () {
        const result = await planThenWrite(() => {
          server.api.patch(server.types.mappings, 'default', 'web', 'application/merge-patch+json', {spec: {addresses: ['198.18.0.10']}})
        })
        expect(stored().metadata.generation).to.equal(2)
        expect(result).to.include({patched: 0, conflicts: 1, failed: 0})
        expect(statusPatches(), 'one conditional patch, refused with 409').to.have.length(1)
        expect(reads(), 'one fresh read').to.have.length(1)
        expect(stored().status, 'nothing written for generation 2 from the plan of generation 1').to.equal(undefined)

        expect(await sync(host('198.18.0.10'))).to.include({patched: 1, conflicts: 0})
        expect(stored().status!.observedGeneration).to.equal(2)
        expect(stored().status!.conditions!.map((c) => c.observedGeneration)).to.deep.equal([2, 2])
      })

      it('a Mapping deleted and created again under the same name: the write is given up as a conflict', async function () {
        const result = await planThenWrite(() => {
          const {metadata, spec} = stored()
          server.api.delete(server.types.mappings, 'default', 'web')
          server.api.create(server.types.mappings, 'default', {metadata: {name: metadata.name}, spec})
        })
        expect(stored().metadata.generation, 'the same generation, a new uid').to.equal(1)
        expect(result).to.include({patched: 0, conflicts: 1, gone: 0})
        expect(stored().status).to.equal(undefined)
      })

      it('only the status changed in between: the retry writes the generation the verdict was planned from', async function () {
        const result = await planThenWrite(() => {
          server.api.patch(server.types.mappings, 'default', 'web', 'application/merge-patch+json', {status: {invalid: 'no'}}, {status: true})
        })
        expect(result).to.include({patched: 1, conflicts: 0})
        expect(stored().status!.observedGeneration).to.equal(1)
      })
    })

    it('keeps a bounded number of writes in flight and reports them in Mapping order', async function () {
      let inFlight = 0
      let most = 0
      const slow: MappingStatusApi = {
        get: () => Promise.reject(new Error('not read')),
        patchStatus: async (namespace, name, patch) => {
          most = Math.max(most, ++inFlight)
          // Later Mappings answer first, so completion order is not Mapping order.
          await new Promise((resolve) => setTimeout(resolve, 30 - Number(name.slice(1))))
          inFlight--
          return {metadata: {namespace, name}, status: patch as MappingStatus}
        },
      }
      const names = Array.from({length: 20}, (_, i) => `m${String(i).padStart(2, '0')}`)
      const mappings = names.map((name) => ({...mapping(), metadata: {namespace: 'default', name, generation: 3}}))
      const result = await writeStatuses(slow, mappings, names.map((name) => verdict({name})), host('198.18.0.10'), T0)
      expect(most).to.equal(API_WRITES_IN_FLIGHT)
      expect(result).to.include({patched: 20, failed: 0})
      expect(result.changes.map((c) => c.name)).to.deep.equal(names)
    })

    it('a publish whose signal is aborted starts no further write', async function () {
      const abort = new AbortController()
      const patched: string[] = []
      const events: string[] = []
      const cutShort: MappingStatusApi = {
        get: () => Promise.reject(new Error('not read')),
        patchStatus: async (namespace, name, patch) => {
          patched.push(name)
          // The writeback's deadline passes while this write is in flight.
          abort.abort(new Error('status writeback timed out after 1s'))
          return {metadata: {namespace, name}, status: patch as MappingStatus}
        },
      }
      const names = Array.from({length: 20}, (_, i) => `m${String(i).padStart(2, '0')}`)
      const report = {
        snapshot: {mappings: names.map((name) => ({...mapping(), metadata: {namespace: 'default', name, generation: 3}})), services: [], endpointSlices: []},
        plan: {verdicts: names.map((name) => verdict({name})), model: {mappings: []}},
        host: host('198.18.0.10'),
      } as unknown as SyncReport
      const publisher = apiPublisher({...cutShort, patchMetadata: async () => {}}, {create: async (_namespace, event) => void events.push(event.reason ?? '')}, 'edge-1', 4)
      const result = await publisher.publish(report, T0, abort.signal)
      expect(patched).to.deep.equal(['m00'])
      expect(events, 'Events come after the statuses: none starts either').to.deep.equal([])
      const statusErrors = result.errors.filter((e) => e.message.includes('writing status'))
      expect(statusErrors).to.have.length(19)
      expect(statusErrors[0]!.message).to.equal('mapping default/m01: writing status: status writeback timed out after 1s')
    })

    it('reports other failures per Mapping, naming it, without throwing', async function () {
      const failing: MappingStatusApi = {
        get: (namespace, name) => api.get(namespace, name),
        patchStatus: () => Promise.reject(new Error('connect ECONNREFUSED 127.0.0.1:1')),
      }
      const snapshot = await listSnapshot(kc)
      const {verdicts} = plan(snapshot, host('198.18.0.10'), DEFAULT_PLAN_OPTIONS)
      const result = await writeStatuses(failing, snapshot.mappings, verdicts, host('198.18.0.10'), T0)
      expect(result).to.include({patched: 0, failed: 1})
      expect(result.errors.map((e) => e.message)).to.deep.equal(['mapping default/web: writing status: connect ECONNREFUSED 127.0.0.1:1'])
    })
  })
})
