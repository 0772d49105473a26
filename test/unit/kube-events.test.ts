/** Events on a Mapping's transitions: which ones, and that they reach the API server as core/v1 Events. */
import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import type {MappingResource, MappingStatus} from '../../src/lib/mapping/types.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'
import {DEFAULT_PLAN_OPTIONS, type HostInfo} from '../../src/lib/plan/model.js'
import {plan} from '../../src/lib/plan/plan.js'
import {listSnapshot} from '../../src/lib/source/kube/source.js'
import {kubeEventApi, kubeMappingStatusApi} from '../../src/lib/source/kube/writers.js'
import {NOT_RECORDED} from '../../src/lib/allocate/pending.js'
import {recordEvents, transitionEvents, type MappingEvent} from '../../src/lib/sync/events.js'
import {ownAddresses, writeStatuses} from '../../src/lib/sync/status.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'

const own = new Set(['198.18.0.10', '198.18.0.9'])
const served = (...addresses: string[]): MappingStatus['configuredAddresses'] => Object.fromEntries(addresses.map((a) => [a, {podIPs: ['198.19.0.1']}]))

describe('mapping events', function () {
  const cases: {desc: string; previous?: MappingStatus; next: MappingStatus; want: MappingEvent[]}[] = [
    {
      desc: 'first configured',
      next: {invalid: 'no', configuredAddresses: served('198.18.0.10', '198.18.0.9')},
      want: [{type: 'Normal', reason: 'Configured', message: 'edge-1 serves 198.18.0.9, 198.18.0.10'}],
    },
    {
      desc: 'pod IPs change, addresses do not',
      previous: {invalid: 'no', configuredAddresses: served('198.18.0.10')},
      next: {invalid: 'no', configuredAddresses: {'198.18.0.10': {podIPs: ['198.19.0.1', '198.19.0.2']}}},
      want: [],
    },
    {
      desc: 'another instance adds its address',
      previous: {invalid: 'no', configuredAddresses: served('198.18.0.10')},
      next: {invalid: 'no', configuredAddresses: served('198.18.0.10', '198.18.0.11')},
      want: [],
    },
    {
      desc: 'one more own address',
      previous: {invalid: 'no', configuredAddresses: served('198.18.0.10')},
      next: {invalid: 'no', configuredAddresses: served('198.18.0.10', '198.18.0.9')},
      want: [{type: 'Normal', reason: 'Configured', message: 'edge-1 serves 198.18.0.9, 198.18.0.10'}],
    },
    {
      desc: 'configured, then invalid',
      previous: {invalid: 'no', configuredAddresses: served('198.18.0.10', '198.18.0.11')},
      next: {invalid: 'tcp/80 on 198.18.0.10 is already mapped by default/older', configuredAddresses: served('198.18.0.11')},
      want: [
        {type: 'Warning', reason: 'Invalid', message: 'tcp/80 on 198.18.0.10 is already mapped by default/older'},
        {type: 'Normal', reason: 'Removed', message: 'edge-1 no longer serves 198.18.0.10'},
      ],
    },
    {
      desc: 'still invalid for the same reason',
      previous: {invalid: 'service "web" not found in namespace "default"'},
      next: {invalid: 'service "web" not found in namespace "default"'},
      want: [],
    },
    {
      desc: 'invalid for a new reason',
      previous: {invalid: 'service "web" not found in namespace "default"'},
      next: {invalid: 'service default/web has no tcp port 80'},
      want: [{type: 'Warning', reason: 'Invalid', message: 'service default/web has no tcp port 80'}],
    },
    {
      desc: 'waiting one pass for its allocation to be recorded',
      next: {invalid: NOT_RECORDED},
      want: [],
    },
    {
      desc: 'no longer programmed while valid',
      previous: {invalid: 'no', configuredAddresses: served('198.18.0.10')},
      next: {invalid: 'no'},
      want: [{type: 'Normal', reason: 'Removed', message: 'edge-1 no longer serves 198.18.0.10'}],
    },
    {
      desc: 'valid again but served elsewhere only',
      previous: {invalid: 'bad'},
      next: {invalid: 'no', configuredAddresses: served('198.18.0.11')},
      want: [],
    },
  ]
  for (const {desc, previous, next, want} of cases) {
    it(`${desc}: ${want.map((e) => e.reason).join(', ') || 'no event'}`, function () {
      expect(transitionEvents(previous, next, own, 'edge-1')).to.deep.equal(want)
    })
  }

  describe('recorded through the API server', function () {
    let server: ApiServer
    let kc: KubeConfig

    const events = () => server.api.list(server.types.events, 'default', {}).items as unknown as Record<string, unknown>[]

    beforeEach(async function () {
      server = await startApiServer({crds: ['crds/mapping.yaml']})
      kc = new KubeConfig()
      kc.loadFromString(server.kubeconfig())
      server.api.create(server.types.services, 'default', {
        metadata: {name: 'web'}, spec: {clusterIP: '10.96.0.20', ports: [{port: 80, protocol: 'TCP', targetPort: 8080}]},
      })
      server.api.create(server.types.mappings, 'default', {
        metadata: {name: 'web'},
        spec: {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]},
      })
    })

    afterEach(async function () {
      await server.stop()
    })

    async function sync(instance: HostInfo) {
      const snapshot = await listSnapshot(kc)
      const {verdicts} = plan(snapshot, instance, DEFAULT_PLAN_OPTIONS)
      const written = await writeStatuses(kubeMappingStatusApi(kc), snapshot.mappings, verdicts, instance, new Date())
      return recordEvents(kubeEventApi(kc), written.changes, ownAddresses(instance), 'edge-1', new Date())
    }

    it('records Configured once, nothing on a repeat, then Invalid and Removed when the Service goes away', async function () {
      const edge: HostInfo = {interfaces: [{name: 'ext0', addresses: [{address: '198.18.0.10' as Ipv4, prefixLength: 24}]}]}
      expect(await sync(edge)).to.deep.equal({created: 1, errors: []})
      expect(await sync(edge)).to.deep.equal({created: 0, errors: []})
      server.api.delete(server.types.services, 'default', 'web')
      expect((await sync(edge)).created).to.equal(2)
      expect(await sync(edge)).to.deep.equal({created: 0, errors: []})

      const mapping = server.api.get(server.types.mappings, 'default', 'web') as unknown as MappingResource
      const recorded = events()
      // The server lists Events by name, and names end in a random suffix: compare them in a fixed order.
      const byReason = recorded.map((e) => [e.type, e.reason, e.message] as string[]).sort((a, b) => a[1]!.localeCompare(b[1]!))
      expect(byReason).to.deep.equal([
        ['Normal', 'Configured', 'edge-1 serves 198.18.0.10'],
        ['Warning', 'Invalid', 'service "web" not found in namespace "default"'],
        ['Normal', 'Removed', 'edge-1 no longer serves 198.18.0.10'],
      ])
      const first = recorded.find((e) => e.reason === 'Configured')!
      expect(first.involvedObject).to.deep.include({apiVersion: 'smartnat.aureacentral.com/v1alpha1', kind: 'Mapping', namespace: 'default', name: 'web', uid: mapping.metadata.uid})
      expect(first).to.deep.include({source: {component: 'smartnat', host: 'edge-1'}, reportingComponent: 'smartnat', reportingInstance: 'edge-1', count: 1})
      expect(String((first.metadata as {name: string}).name)).to.match(/^web\./)
    })
  })
})
