import {KubeConfig} from '@kubernetes/client-node'
import {expect} from 'chai'
import {mkdir, mkdtemp, readFile, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {parse} from 'yaml'

import {shippedCrd} from '../../src/lib/source/kube/crd-install.js'
import {crdInstallCommand, discoverMappings, LegacyCrdError, requireStatusSubresource} from '../../src/lib/source/kube/crd.js'
import {startApiServer, type ApiServer, type KubeObject} from '../support/apiserver/index.js'

const GO_CRD = 'test/unit/fixtures/go-controller-crd.yaml'

describe('the Mapping CRD in the cluster, through discovery', function () {
  let server: ApiServer | undefined

  afterEach(async function () {
    await server?.stop()
    server = undefined
  })

  async function serving(crds: string[]): Promise<KubeConfig> {
    server = await startApiServer({crds})
    const kc = new KubeConfig()
    kc.loadFromString(server.kubeconfig())
    return kc
  }

  it('tells smartnat’s CRD, the Go controller’s and none apart', async function () {
    expect(await discoverMappings(await serving(['crds/mapping.yaml']))).to.equal('status')
    await server!.stop()
    expect(await discoverMappings(await serving([GO_CRD]))).to.equal('no-status')
    await server!.stop()
    expect(await discoverMappings(await serving([]))).to.equal('absent')
  })

  it('refuses the Go controller’s CRD, naming the kubectl line that installs smartnat’s shipped file', async function () {
    const kc = await serving([GO_CRD])
    const error = await requireStatusSubresource(kc, {}, {signal: new AbortController().signal}).catch((e: unknown) => e)
    expect(error).to.be.instanceOf(LegacyCrdError)
    expect(crdInstallCommand()).to.match(/^kubectl apply -f \/.+\/crds\/mapping\.yaml$/)
    expect((error as Error).message).to.equal(
      `the Mapping CRD installed in the cluster has no status subresource (mappings/status), as the Go controller's had; smartnat writes Mapping status only there. Install smartnat's CRD: ${crdInstallCommand()}`,
    )
  })

  it('asks again while no CRD is installed, and passes once smartnat’s is', async function () {
    const kc = await serving([])
    const retries: string[] = []
    const crd = parse(await readFile('crds/mapping.yaml', 'utf8')) as KubeObject
    // Each wait is where the test installs the CRD: on the second one.
    const delay = async () => {
      if (retries.length === 2) server!.api.create(server!.types.crds, undefined, crd)
    }
    await requireStatusSubresource(kc, {}, {signal: new AbortController().signal, delay, onRetry: (reason) => retries.push(reason)})
    expect(retries).to.deep.equal([
      'the API serves no mappings.smartnat.aureacentral.com/v1alpha1 (is the CRD installed?)',
      'the API serves no mappings.smartnat.aureacentral.com/v1alpha1 (is the CRD installed?)',
    ])
  })

  it('stops asking when told to', async function () {
    const kc = await serving([])
    const stop = new AbortController()
    let asked = 0
    await requireStatusSubresource(kc, {}, {signal: stop.signal, delay: async () => stop.abort(), onRetry: () => asked++})
    expect(asked).to.equal(1)
  })
})

describe('the CRD file an installation ships', () => {
  let dir: string
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-crd-'))
  })
  afterEach(async () => {
    await rm(dir, {recursive: true, force: true})
  })

  it('is found under share/smartnat beside the .deb’s /usr/bin, and in crds/ at a package root', async () => {
    await mkdir(join(dir, 'usr', 'bin'), {recursive: true})
    expect(shippedCrd(join(dir, 'usr', 'bin'))).to.equal(undefined)
    await mkdir(join(dir, 'usr', 'share', 'smartnat', 'crds'), {recursive: true})
    await writeFile(join(dir, 'usr', 'share', 'smartnat', 'crds', 'mapping.yaml'), '')
    expect(shippedCrd(join(dir, 'usr', 'bin'))).to.equal(join(dir, 'usr', 'share', 'smartnat', 'crds', 'mapping.yaml'))
    await mkdir(join(dir, 'pkg', 'dist', 'chunks'), {recursive: true})
    await mkdir(join(dir, 'pkg', 'crds'))
    await writeFile(join(dir, 'pkg', 'crds', 'mapping.yaml'), '')
    expect(shippedCrd(join(dir, 'pkg', 'dist', 'chunks'))).to.equal(join(dir, 'pkg', 'crds', 'mapping.yaml'))
  })
})
