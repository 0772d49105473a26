import {expect} from 'chai'
import {mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync} from 'node:fs'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {LaunchingRunner} from '../../src/lib/host/launcher.js'
import {ExecRunner, type RunOptions, type RunResult, type Runner} from '../../src/lib/host/runner.js'
import {commandError, isAlive} from '../support/processes.js'

/** A runner that starts real processes and counts what it was asked to run. */
class CountedExec implements Runner {
  runs: string[] = []
  private readonly exec = new ExecRunner({timeoutSeconds: 10})
  run(command: string, args: string[], options?: RunOptions): Promise<RunResult> {
    this.runs.push(command)
    return this.exec.run(command, args, options)
  }
  follow = this.exec.follow.bind(this.exec)
}

describe('LaunchingRunner', () => {
  let scratch: string
  let inner: CountedExec
  let shells: number
  let launched: ReturnType<ExecRunner['keep']>[]
  let runner: LaunchingRunner
  const exec = new ExecRunner({timeoutSeconds: 10})
  const open = (options: {timeoutMs?: number; startShell?: () => ReturnType<ExecRunner['keep']>} = {}) =>
    new LaunchingRunner(inner, {
      startShell:
        options.startShell ??
        (() => {
          shells++
          const shell = exec.keep('sh', [])
          launched.push(shell)
          return shell
        }),
      timeoutMs: options.timeoutMs ?? 10_000,
      killAfterMs: 500,
      directory: scratch,
    })

  beforeEach(() => {
    scratch = mkdtempSync(join(tmpdir(), 'smartnat-launcher-'))
    inner = new CountedExec()
    shells = 0
    launched = []
    runner = open()
  })
  afterEach(() => {
    runner.close()
    rmSync(scratch, {recursive: true, force: true})
  })

  it('hands the input to the process and returns its stdout, stderr and exit code, through one shell for all', async () => {
    const results = await Promise.all(
      Array.from({length: 8}, (_, i) => runner.run('sh', ['-c', 'tr a-z A-Z; echo "warning $0" >&2', String(i)], {input: `create set ${i}\nadd set 1\n`})),
    )
    results.forEach((result, i) => expect(result).to.deep.equal({stdout: `CREATE SET ${i}\nADD SET 1\n`, stderr: `warning ${i}\n`, exitCode: 0}))
    expect(await runner.run('true', [])).to.deep.equal({stdout: '', stderr: '', exitCode: 0})
    expect(shells).to.equal(1)
    expect(inner.runs).to.deep.equal([])
  })

  it('passes every argument as it is, quotes, spaces and dollars included', async () => {
    const args = ['%s|', 'a b', "it's", '$HOME', '`true`', '*', '', 'ip,tcp:80']
    const {stdout} = await runner.run('printf', args)
    expect(stdout).to.equal(`${args.slice(1).join('|')}|`)
  })

  it('carries a payload of several megabytes intact, and leaves no file behind', async () => {
    const payload = 'add smartnat-allow 198.18.0.1,tcp:80,198.19.0.0/16\n'.repeat(100_000)
    const {stdout} = await runner.run('cat', [], {input: payload})
    expect(stdout === payload).to.equal(true)
    const [directory, ...others] = readdirSync(scratch).filter((name) => name !== 'pid')
    expect(others).to.deep.equal([])
    expect(readdirSync(join(scratch, directory!))).to.deep.equal([])
  })

  it('fails a command that exits non-zero with its exit code and stderr, unless the code is one it may exit with', async () => {
    const error = await commandError(runner.run('sh', ['-c', 'echo "no such set" >&2; exit 3']))
    expect(error.exitCode).to.equal(3)
    expect(error.message).to.equal('sh -c echo "no such set" >&2; exit 3 exited with 3: no such set')
    expect((await runner.run('sh', ['-c', 'exit 1'], {okExitCodes: [1]})).exitCode).to.equal(1)
  })

  it('reports a command that is not there as one that could not be started, as a process of its own would', async () => {
    const error = await commandError(runner.run('smartnat-no-such-tool', ['--version']))
    expect(error.exitCode).to.equal(undefined)
    expect(error.message).to.match(/^smartnat-no-such-tool --version could not be started \(not found on PATH\)/)
  })

  it('ends a process that outlives the timeout and says it timed out', async () => {
    runner = open({timeoutMs: 300})
    const error = await commandError(runner.run('sh', ['-c', 'echo $$ > "$0"; exec sleep 30', join(scratch, 'pid')]))
    expect(error.message).to.match(/timed out/)
    expect(isAlive(Number(readFileSync(join(scratch, 'pid'), 'utf8')))).to.equal(false)
    // The shell is still there for the next process.
    expect((await runner.run('echo', ['next'])).stdout).to.equal('next\n')
    expect(shells).to.equal(1)
  })

  it('fails a process killed by a signal, naming the signal', async () => {
    const error = await commandError(runner.run('sh', ['-c', 'kill -TERM $$']))
    expect(error.message).to.match(/was killed by SIGTERM/)
  })

  it('fails a process the shell had started when the shell ended, and starts a new shell for the next', async () => {
    const running = runner.run('sleep', ['30'])
    // Once the shell said the process started, the shell goes.
    await new Promise((resolve) => setTimeout(resolve, 300))
    launched[0]!.kill('SIGKILL')
    const error = await commandError(running)
    expect(error.message).to.equal('sleep 30 ended unseen: the shell that started it ended first')
    expect((await runner.run('echo', ['again'])).stdout).to.equal('again\n')
    expect(shells).to.equal(2)
  })

  it('starts processes as before when no shell can be started, and for output handed over as it comes', async () => {
    runner = open({
      startShell: () => {
        throw new Error('no sh')
      },
    })
    expect((await runner.run('echo', ['direct'])).stdout).to.equal('direct\n')
    expect((await runner.run('echo', ['again'])).stdout).to.equal('again\n')
    expect(inner.runs).to.deep.equal(['echo', 'echo'])

    const streaming = open()
    const chunks: Buffer[] = []
    await streaming.run('echo', ['streamed'], {onStdout: (chunk) => chunks.push(chunk)})
    streaming.close()
    expect(Buffer.concat(chunks).toString()).to.equal('streamed\n')
    expect(inner.runs).to.deep.equal(['echo', 'echo', 'echo'])
  })

  it('gives up on the shell after it ended three times, and starts processes as before', async () => {
    for (let i = 0; i < 3; i++) {
      await runner.run('true', [])
      launched[i]!.kill('SIGKILL')
      await new Promise((resolve) => launched[i]!.once('exit', resolve))
    }
    expect((await runner.run('echo', ['direct'])).stdout).to.equal('direct\n')
    expect(shells).to.equal(3)
    expect(inner.runs).to.deep.equal(['echo'])
  })

  it("works in a directory named by the daemon's pid, emptied first: what a daemon with the same pid left is gone", async () => {
    const directory = join(scratch, `smartnat-run-${process.pid}`)
    mkdirSync(directory)
    writeFileSync(join(directory, '7.out'), 'left by a daemon killed outright')
    expect((await runner.run('cat', [], {input: 'fresh\n'})).stdout).to.equal('fresh\n')
    expect(readdirSync(directory)).to.deep.equal([])
  })

  it('removes what daemons killed outright left under pids no process has any more, and nothing else', async () => {
    const ended = exec.keep('true', [])
    await new Promise((resolve) => ended.once('exit', resolve))
    const dead = join(scratch, `smartnat-run-${ended.pid}`)
    const live = join(scratch, `smartnat-run-${process.ppid}`)
    const other = join(scratch, 'smartnat-run-notes')
    for (const directory of [dead, live, other]) {
      mkdirSync(directory)
      writeFileSync(join(directory, '3.err'), 'left')
    }
    expect((await runner.run('true', [])).exitCode).to.equal(0)
    expect(readdirSync(scratch).sort()).to.deep.equal([`smartnat-run-${process.pid}`, `smartnat-run-${process.ppid}`, 'smartnat-run-notes'].sort())
    expect(readdirSync(live)).to.deep.equal(['3.err'])
  })

  it('leaves neither the shell nor its processes behind once closed', async () => {
    await runner.run('true', [])
    const shell = launched[0]!
    runner.close()
    await new Promise((resolve) => (shell.exitCode === null && shell.signalCode === null ? shell.once('exit', resolve) : resolve(undefined)))
    expect(isAlive(shell.pid!)).to.equal(false)
    expect(readdirSync(scratch)).to.deep.equal([])
  })
})
