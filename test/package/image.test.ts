/**
 * The OCI image `npm run package` wrote (dist-release/smartnat_VERSION_ARCH.oci.tar): unpacked with
 * umoci, its smartnat runs from its own root filesystem (chroot), with the image's iptables, ipset
 * and ip, inside the lab's host namespace, as the DaemonSet runs it (read-only root, NET_ADMIN and
 * NET_RAW only), and a real sync of the examples makes traffic reach the pods.
 */
import {execFileSync} from 'node:child_process'
import {cpSync, existsSync, mkdirSync, mkdtempSync, rmSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {expect} from 'chai'

import {DEB_ARCH, RELEASE_DIR, ROOT, packageVersion} from '../../scripts/package/paths.js'
import {LAB_PLAN, createLab, requireLab, type EchoResult, type Lab} from '../support/lab.js'
import {requireNeeds, requireOrSkip} from '../support/requirements.js'
import {inChroot, inChrootOk} from './chroot.js'

const VERSION = packageVersion()
const ARCHIVE = join(RELEASE_DIR, `smartnat_${VERSION}_${DEB_ARCH}.oci.tar`)
// examples/echo-service.yaml: 198.18.0.10:8080 -> the Service 198.19.100.10:8080 -> two pods on 8080.
const EXTERNAL = LAB_PLAN.host.eth1.addresses[0]
const ECHO_PODS = ['198.19.200.11', '198.19.200.12']
const [CLIENT] = LAB_PLAN.client1.addresses

describe('the OCI image', function () {
  this.timeout(300_000)
  let work: string
  let rootfs: string
  let lab: Lab | undefined

  before(async function () {
    requireLab(this)
    requireNeeds(this, 'the image test', {tools: ['umoci', 'chroot', 'tar']})
    requireOrSkip(this, existsSync(ARCHIVE) ? undefined : `the image test needs ${ARCHIVE} (npm run package)`)
    work = mkdtempSync(join(tmpdir(), 'smartnat-image-test-'))
    const layout = join(work, 'oci')
    mkdirSync(layout)
    execFileSync('tar', ['-xf', ARCHIVE, '-C', layout])
    execFileSync('umoci', ['unpack', '--image', `${layout}:smartnat:${VERSION}`, join(work, 'bundle')], {stdio: ['ignore', 'ignore', 'inherit']})
    rootfs = join(work, 'bundle', 'rootfs')
    cpSync(join(ROOT, 'examples'), join(rootfs, 'examples'), {recursive: true})
    lab = await createLab({services: [{vip: '198.19.100.10', protocol: 'tcp', port: 8080, targetPort: 8080, pods: ECHO_PODS}]})
  })

  after(async () => {
    await lab?.destroy()
    if (work) rmSync(work, {recursive: true, force: true})
  })

  it('names smartnat:VERSION and starts smartnat watch, as deploy/daemonset.yaml expects', () => {
    const config = JSON.parse(execFileSync('umoci', ['stat', '--image', `${join(work, 'oci')}:smartnat:${VERSION}`, '--json'], {encoding: 'utf8'})) as {history: unknown[]}
    expect(config.history).to.be.an('array')
    const runtime = JSON.parse(execFileSync('cat', [join(work, 'bundle', 'config.json')], {encoding: 'utf8'})) as {process: {args: string[]}}
    expect(runtime.process.args).to.deep.equal(['/usr/bin/smartnat', 'watch'])
  })

  it('syncs the examples from inside the image, and TCP reaches the pods through the external address', async () => {
    const before: EchoResult = await lab!.tcpRequest('client1', CLIENT, EXTERNAL, 8080, {timeoutMs: 800})
    expect(before.ok).to.equal(false)

    const version = await inChrootOk(rootfs, '/usr/bin/smartnat', ['--version'], {netns: lab!.ns('host')})
    expect(version).to.match(new RegExp(`^smartnat/${VERSION.replaceAll('.', '\\.')} linux-`))
    // Read-only root, NET_ADMIN and NET_RAW only, the lock in /run/smartnat: as in deploy/daemonset.yaml.
    const sync = await inChroot(rootfs, '/usr/bin/smartnat', ['sync', '--from-file', '/examples', '--json'], {netns: lab!.ns('host'), asDaemonSet: true})
    expect(sync.exitCode, String(sync.stderr)).to.equal(0)
    expect(JSON.parse(String(sync.stdout))).to.include({configured: 2, invalid: 0, changed: true})

    const answers = await lab!.requests('tcp', 'client1', CLIENT, EXTERNAL, 8080, 2)
    expect(answers.map((answer) => (answer.ok ? answer.fields.pod : answer.error))).to.have.members(ECHO_PODS)
    // The image's iptables wrote the rules: the lab's host namespace holds smartnat's chains.
    const rules = await inChrootOk(rootfs, 'iptables-save', ['-t', 'nat'], {netns: lab!.ns('host')})
    expect(rules).to.contain(':SNM-PREROUTING')
    // The shell the daemon starts its tools through.
    expect(await inChrootOk(rootfs, 'sh', ['-c', 'echo "$0"', 'kept'], {netns: lab!.ns('host')})).to.equal('kept')
  })
})
