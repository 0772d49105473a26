/**
 * The Go controller's finalizer: removed, and nothing else, from a Mapping being deleted once a pass applied
 * without it; a Mapping still programmed, not being deleted, or whose finalizers changed since is left alone.
 */
import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import type {MappingResource} from '../../src/lib/mapping/types.js'
import type {NatMapping} from '../../src/lib/plan/model.js'
import {listSnapshot} from '../../src/lib/source/kube/source.js'
import {kubeMappingFinalizerApi, type MappingFinalizerApi} from '../../src/lib/source/kube/writers.js'
import {finalizerRemoval, GO_CONTROLLER_FINALIZER, removeGoFinalizers} from '../../src/lib/sync/finalizers.js'
import {startApiServer, type ApiServer} from '../support/apiserver/index.js'

const OTHER = 'example.com/keep-me'

describe('removing the Go controller\'s finalizer', function () {
  it('tests the whole list, then removes only that finalizer', function () {
    expect(finalizerRemoval([OTHER, GO_CONTROLLER_FINALIZER])).to.deep.equal([
      {op: 'test', path: '/metadata/finalizers', value: [OTHER, GO_CONTROLLER_FINALIZER]},
      {op: 'remove', path: '/metadata/finalizers/1'},
    ])
  })

  describe('against the API server', function () {
    let server: ApiServer
    let api: MappingFinalizerApi
    let kc: KubeConfig
    const stored = (name: string) => server.api.get(server.types.mappings, 'default', name) as unknown as MappingResource
    const exists = (name: string) => server.api.list(server.types.mappings, 'default', {}).items.some((m) => m.metadata.name === name)
    const programmed = (name: string) => ({namespace: 'default', name}) as NatMapping

    beforeEach(async function () {
      server = await startApiServer({crds: ['crds/mapping.yaml']})
      kc = new KubeConfig()
      kc.loadFromString(server.kubeconfig())
      api = kubeMappingFinalizerApi(kc)
      const spec = {addresses: ['198.18.0.10'], serviceName: 'web', ports: [{port: 80}]}
      server.api.create(server.types.mappings, 'default', {metadata: {name: 'go-only', finalizers: [GO_CONTROLLER_FINALIZER]}, spec})
      server.api.create(server.types.mappings, 'default', {metadata: {name: 'shared', finalizers: [OTHER, GO_CONTROLLER_FINALIZER]}, spec: {...spec, addresses: ['198.18.0.11']}})
      server.api.create(server.types.mappings, 'default', {metadata: {name: 'live', finalizers: [GO_CONTROLLER_FINALIZER]}, spec: {...spec, addresses: ['198.18.0.12']}})
      server.api.create(server.types.mappings, 'default', {metadata: {name: 'still-here', finalizers: [GO_CONTROLLER_FINALIZER]}, spec: {...spec, addresses: ['198.18.0.13']}})
      for (const name of ['go-only', 'shared', 'still-here']) server.api.delete(server.types.mappings, 'default', name)
    })

    afterEach(async function () {
      await server.stop()
    })

    it('completes the deletions the finalizer held, keeps other finalizers, and leaves what is still programmed or not deleted', async function () {
      const {mappings} = await listSnapshot(kc)
      const result = await removeGoFinalizers(api, mappings, {mappings: [programmed('still-here')]})
      expect(result).to.deep.equal({removed: 2, conflicts: 0, errors: []})
      expect(exists('go-only'), 'its only finalizer gone, the deletion completed').to.equal(false)
      expect(stored('shared').metadata.finalizers).to.deep.equal([OTHER])
      expect(stored('live').metadata.finalizers).to.deep.equal([GO_CONTROLLER_FINALIZER])
      expect(stored('still-here').metadata.finalizers).to.deep.equal([GO_CONTROLLER_FINALIZER])
      // Once the next pass has applied without it, it goes too.
      expect(await removeGoFinalizers(api, (await listSnapshot(kc)).mappings, {mappings: []})).to.include({removed: 1})
      expect(exists('still-here')).to.equal(false)
    })

    it('counts a Mapping whose finalizers changed since it was read as a conflict, and removes nothing', async function () {
      const {mappings} = await listSnapshot(kc)
      server.api.patch(server.types.mappings, 'default', 'shared', 'application/merge-patch+json', {metadata: {finalizers: [OTHER, 'example.com/new', GO_CONTROLLER_FINALIZER]}})
      const result = await removeGoFinalizers(api, mappings.filter((m) => m.metadata.name === 'shared'), {mappings: []})
      expect(result).to.deep.equal({removed: 0, conflicts: 1, errors: []})
      expect(stored('shared').metadata.finalizers).to.deep.equal([OTHER, 'example.com/new', GO_CONTROLLER_FINALIZER])
    })
  })
})
