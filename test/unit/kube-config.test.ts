/** loadKubeConfig finds credentials in kubectl's order and names what is wrong when it cannot. */
import {mkdtemp, mkdir, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {expect} from 'chai'
import {stringify} from 'yaml'
import {loadKubeConfig, plainHttpWarning} from '../../src/lib/source/kube/config.js'

function kubeconfig(contexts: {name: string; server: string}[], current?: string): string {
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: contexts.map((c) => ({name: c.name, cluster: {server: c.server}})),
    users: contexts.map((c) => ({name: c.name, user: {token: `token-${c.name}`}})),
    contexts: contexts.map((c) => ({name: c.name, context: {cluster: c.name, user: c.name}})),
    ...(current ? {'current-context': current} : {}),
  })
}

describe('loadKubeConfig', function () {
  let dir: string

  beforeEach(async function () {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-kubeconfig-'))
  })

  afterEach(async function () {
    await rm(dir, {recursive: true, force: true})
  })

  async function file(name: string, text: string): Promise<string> {
    const path = join(dir, name)
    await writeFile(path, text)
    return path
  }

  it('reads --kubeconfig and uses its current context', async function () {
    const path = await file('a.yaml', kubeconfig([{name: 'one', server: 'https://one.example:6443'}, {name: 'two', server: 'https://two.example:6443'}], 'two'))
    const kc = loadKubeConfig({kubeconfig: path, env: {}})
    expect(kc.getCurrentCluster()?.server).to.equal('https://two.example:6443')
  })

  it('switches to --context', async function () {
    const path = await file('a.yaml', kubeconfig([{name: 'one', server: 'https://one.example:6443'}, {name: 'two', server: 'https://two.example:6443'}], 'two'))
    const kc = loadKubeConfig({kubeconfig: path, context: 'one', env: {}})
    expect(kc.getCurrentContext()).to.equal('one')
    expect(kc.getCurrentCluster()?.server).to.equal('https://one.example:6443')
  })

  it('prefers --kubeconfig over KUBECONFIG', async function () {
    const flag = await file('flag.yaml', kubeconfig([{name: 'flag', server: 'https://flag.example'}], 'flag'))
    const env = await file('env.yaml', kubeconfig([{name: 'env', server: 'https://env.example'}], 'env'))
    expect(loadKubeConfig({kubeconfig: flag, env: {KUBECONFIG: env}}).getCurrentContext()).to.equal('flag')
  })

  it('merges the KUBECONFIG list like kubectl: first definition and first current-context win, missing files skipped', async function () {
    const a = await file('a.yaml', kubeconfig([{name: 'shared', server: 'https://a.example'}]))
    const b = await file('b.yaml', kubeconfig([{name: 'shared', server: 'https://b.example'}, {name: 'only-b', server: 'https://only-b.example'}], 'shared'))
    const kc = loadKubeConfig({env: {KUBECONFIG: [join(dir, 'missing.yaml'), a, b].join(':'), HOME: dir}})
    expect(kc.getContexts().map((c) => c.name)).to.deep.equal(['shared', 'only-b'])
    expect(kc.getCurrentContext()).to.equal('shared')
    expect(kc.getCurrentCluster()?.server).to.equal('https://a.example')
    expect(loadKubeConfig({context: 'only-b', env: {KUBECONFIG: `${a}:${b}`}}).getCurrentCluster()?.server).to.equal('https://only-b.example')
  })

  it('falls back to ~/.kube/config', async function () {
    await mkdir(join(dir, '.kube'))
    await file('.kube/config', kubeconfig([{name: 'home', server: 'https://home.example'}], 'home'))
    expect(loadKubeConfig({env: {HOME: dir}}).getCurrentCluster()?.server).to.equal('https://home.example')
  })

  it('falls back to the pod service account', async function () {
    await file('token', 'sa-token')
    await file('ca.crt', 'not used here')
    const kc = loadKubeConfig({env: {HOME: join(dir, 'nohome'), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443'}, serviceAccountDir: dir})
    expect(kc.getCurrentCluster()?.server).to.equal('https://10.96.0.1:443')
    expect(kc.getCurrentCluster()?.caFile).to.equal(join(dir, 'ca.crt'))
    expect(kc.getCurrentUser()?.authProvider).to.deep.equal({name: 'tokenFile', config: {tokenFile: join(dir, 'token')}})
  })

  const failures: {desc: string; options: () => Parameters<typeof loadKubeConfig>[0]; message: (dir: string) => string}[] = [
    {
      desc: 'a --kubeconfig that does not exist',
      options: () => ({kubeconfig: join(dir, 'nope.yaml'), env: {}}),
      message: (d) => `kubeconfig ${join(d, 'nope.yaml')}: no such file`,
    },
    {
      desc: 'a KUBECONFIG list of which no file exists',
      options: () => ({env: {KUBECONFIG: `${join(dir, 'x')}:${join(dir, 'y')}`}}),
      message: (d) => `KUBECONFIG: none of the listed files exists (${join(d, 'x')}, ${join(d, 'y')})`,
    },
    {
      desc: 'nothing to load at all',
      options: () => ({env: {HOME: dir}, serviceAccountDir: join(dir, 'sa')}),
      message: () => 'no Kubernetes credentials: give --kubeconfig, set KUBECONFIG, create ~/.kube/config, or run in a pod with a service account',
    },
  ]
  for (const {desc, options, message} of failures) {
    it(`fails clearly on ${desc}`, function () {
      expect(() => loadKubeConfig(options())).to.throw(message(dir))
    })
  }

  it('fails clearly on an unknown --context, listing the known ones', async function () {
    const path = await file('a.yaml', kubeconfig([{name: 'one', server: 'https://one.example'}, {name: 'two', server: 'https://two.example'}], 'one'))
    expect(() => loadKubeConfig({kubeconfig: path, context: 'three', env: {}})).to.throw('kubeconfig: context "three" not found (known contexts: one, two)')
  })

  it('fails clearly when no context is current', async function () {
    const path = await file('a.yaml', kubeconfig([{name: 'one', server: 'https://one.example'}]))
    expect(() => loadKubeConfig({kubeconfig: path, env: {}})).to.throw('kubeconfig: no current context; give --context or set current-context')
  })

  describe('the server as kubectl reaches it', function () {
    const single = (cluster: Record<string, unknown>, user: Record<string, unknown> = {}) => stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{name: 'c', cluster}],
      users: [{name: 'u', user}],
      contexts: [{name: 'x', context: {cluster: 'c', user: 'u'}}],
      'current-context': 'x',
    })

    for (const server of ['http://127.0.0.1:8001', 'http://api.internal.example:8080']) {
      it(`talks plain http to ${server} without insecure-skip-tls-verify, and says it is unencrypted`, async function () {
        const kc = loadKubeConfig({kubeconfig: await file('kc.yaml', single({server})), env: {}})
        expect(kc.getCurrentCluster()?.server).to.equal(server)
        // Where client-node 1.x refuses plain http (KubeConfig.createAgent), called by every typed request and watch.
        await kc.applyToHTTPSOptions({})
        expect(plainHttpWarning(kc)).to.equal(`the Kubernetes API server ${server} is reached over plain http: requests, answers and credentials travel unencrypted`)
      })
    }

    it('leaves an https server and its TLS verification alone, with no warning', async function () {
      const kc = loadKubeConfig({kubeconfig: await file('kc.yaml', single({server: 'https://api.example:6443'})), env: {}})
      expect(kc.getCurrentCluster()).to.include({server: 'https://api.example:6443', skipTLSVerify: false})
      expect(plainHttpWarning(kc)).to.equal(undefined)
    })

    it('gives a server without a scheme http:// without TLS settings and https:// with them, like kubectl', async function () {
      const plain = loadKubeConfig({kubeconfig: await file('a.yaml', single({server: 'localhost:8080'})), env: {}})
      expect(plain.getCurrentCluster()?.server).to.equal('http://localhost:8080')
      const ca = await file('ca.crt', 'not checked here')
      const tls = loadKubeConfig({kubeconfig: await file('b.yaml', single({server: '10.0.0.1:6443', 'certificate-authority': ca})), env: {}})
      expect(tls.getCurrentCluster()?.server).to.equal('https://10.0.0.1:6443')
    })

    const unusable: {desc: string; cluster?: Record<string, unknown>; user?: Record<string, unknown>; message: (dir: string) => string}[] = [
      {
        desc: 'a server that is not http(s)',
        cluster: {server: 'ftp://api.example'},
        message: () => 'kubeconfig: cluster "c": server "ftp://api.example" is not an https:// or http:// URL',
      },
      {
        desc: 'an unreadable certificate-authority file',
        cluster: {server: 'https://api.example', 'certificate-authority': 'missing-ca.crt'},
        message: (d) => `kubeconfig: cluster "c": cannot read certificate-authority ${join(d, 'missing-ca.crt')}: ENOENT`,
      },
      {
        desc: 'an unreadable client certificate',
        user: {'client-certificate': '/nonexistent/client.crt', 'client-key': '/nonexistent/client.key'},
        message: () => 'kubeconfig: user "u": cannot read client-certificate /nonexistent/client.crt: ENOENT',
      },
      {
        desc: 'a client certificate without a key',
        user: {'client-certificate-data': Buffer.from('cert').toString('base64')},
        message: () => 'kubeconfig: user "u" has a client certificate but no client key',
      },
      {
        desc: 'a client certificate and key that do not load',
        user: {'client-certificate-data': Buffer.from('cert').toString('base64'), 'client-key-data': Buffer.from('key').toString('base64')},
        message: () => 'kubeconfig: user "u": client certificate and key do not load together: ',
      },
      {
        desc: 'a token file that does not exist',
        user: {'token-file': '/nonexistent/token'},
        message: (d) => `kubeconfig ${join(d, 'kc.yaml')}: ENOENT: no such file or directory, open '/nonexistent/token'`,
      },
    ]
    for (const {desc, cluster, user, message} of unusable) {
      it(`fails clearly on ${desc}`, async function () {
        const path = await file('kc.yaml', single(cluster ?? {server: 'https://api.example'}, user))
        expect(() => loadKubeConfig({kubeconfig: path, env: {}})).to.throw(message(dir))
      })
    }

    it('fails clearly on a context whose user is not defined', async function () {
      const path = await file('kc.yaml', stringify({
        clusters: [{name: 'c', cluster: {server: 'https://api.example'}}],
        contexts: [{name: 'x', context: {cluster: 'c', user: 'ghost'}}],
        'current-context': 'x',
      }))
      expect(() => loadKubeConfig({kubeconfig: path, env: {}})).to.throw('kubeconfig: context "x" refers to unknown user "ghost"')
    })

    it('fails clearly in a pod whose service account CA is missing', async function () {
      await file('token', 'sa-token')
      const env = {HOME: join(dir, 'nohome'), KUBERNETES_SERVICE_HOST: '10.96.0.1', KUBERNETES_SERVICE_PORT: '443'}
      expect(() => loadKubeConfig({env, serviceAccountDir: dir})).to.throw(`kubeconfig: cluster "in-cluster": cannot read certificate-authority ${join(dir, 'ca.crt')}: ENOENT`)
    })
  })

  it('names the file that does not parse', async function () {
    const path = await file('bad.yaml', 'clusters: [')
    expect(() => loadKubeConfig({kubeconfig: path, env: {}})).to.throw(`kubeconfig ${path}: `)
  })
})
