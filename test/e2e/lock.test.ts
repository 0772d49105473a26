/**
 * The lock across PID namespaces, as between the DaemonSet's `watch` (its own PID namespace, the
 * host's /run/smartnat mounted) and a `smartnat sync` on the node: the holder runs under
 * `unshare --pid --fork --mount-proc`, where its pid means nothing to the host. The syncs point at a
 * network namespace that does not exist, so one that got past the lock fails there and touches nothing.
 */
import {expect} from 'chai'
import {readFileSync} from 'node:fs'
import {mkdtemp, readlink, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {acquireLock, inspectLock} from '../../src/lib/host/lock.js'
import {startLockProcess, type LockProcess} from '../support/locks.js'
import {requireNeeds} from '../support/requirements.js'
import {smartnat, startSmartnat, stderrSays} from '../support/smartnat-cli.js'

const NO_NETNS = `snm-no-such-namespace-${process.pid}`

describe('the lock, held from another PID namespace (root)', function () {
  this.timeout(60_000)
  let dir: string
  let path: string
  let holder: LockProcess | undefined

  before(function () {
    requireNeeds(this, 'the PID namespace lock test', {root: true, tools: ['unshare', 'flock']})
  })

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'smartnat-lock-ns-'))
    path = join(dir, 'smartnat.lock')
    // --kill-child: should this test die, the holder dies with its unshare.
    holder = startLockProcess([path, 'watch', 'hold'], ['unshare', '--pid', '--fork', '--mount-proc', '--kill-child'])
    expect(await holder.said, 'the holder is pid 1 of its own PID namespace').to.equal('held 1')
  })

  afterEach(async () => {
    holder?.child.kill('SIGKILL')
    await holder?.exited
    await rm(dir, {recursive: true, force: true})
  })

  /** The holder's pid as this PID namespace numbers it: the child unshare forked. */
  function holderPid(): number {
    const unshare = holder!.child.pid!
    const children = readFileSync(`/proc/${unshare}/task/${unshare}/children`, 'utf8').trim().split(/\s+/).map(Number)
    expect(children, 'unshare forked one child').to.have.length(1)
    return children[0]!
  }

  async function killHolder(): Promise<void> {
    process.kill(holderPid(), 'SIGKILL')
    await holder!.exited
  }

  const sync = (wait: number) => ['sync', '--from-file', dir, '--netns', NO_NETNS, '--lock-file', path, '--lock-wait', String(wait)]

  it('smartnat sees the lock as held and names the holder with its PID namespace', async () => {
    const theirs = await readlink(`/proc/${holderPid()}/ns/pid`)
    expect(theirs).to.not.equal(await readlink('/proc/self/ns/pid'))
    expect(await inspectLock(path)).to.deep.include({held: true})
    expect((await inspectLock(path)).holder).to.include({pid: 1, purpose: 'watch', pidNamespace: theirs})

    const result = await smartnat(sync(1))
    expect(result.code).to.not.equal(0)
    expect(result.stderr).to.include(`waiting up to 1 s for ${path}, held by smartnat watch (pid 1 in another PID namespace, ${theirs}, since `)
    expect(result.stderr).to.match(new RegExp(`${path} is held by smartnat watch \\(pid 1 in another PID namespace, pid:\\[\\d+\\], since [^)]+\\); gave up after waiting \\d+ ms`))
    expect(result.stderr).to.not.include(NO_NETNS)
  })

  it('a holder killed with SIGKILL lets go at once: a waiting sync goes on, a new one gets the lock', async () => {
    const waiting = startSmartnat(sync(30))
    await stderrSays(waiting, 'waiting up to 30 s')
    expect(waiting.child.exitCode, 'the sync waits').to.equal(null)
    await killHolder()
    const result = await waiting.done
    // Past the lock, the sync fails on the missing network namespace, which proves it got there.
    expect(result.stderr).to.include(NO_NETNS)
    expect(result.stderr).to.not.include('gave up after waiting')

    expect(await inspectLock(path)).to.deep.include({held: false})
    const lock = await acquireLock({path, waitMs: 0, purpose: 'sync'})
    await lock.release()
  })
})
