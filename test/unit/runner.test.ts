import {expect} from 'chai'
import {mkdtemp, readFile, rm} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'
import {ExecRunner, streamOutput} from '../../src/lib/host/runner.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {heapUsedAfterCollection} from '../support/heap-used.js'
import {commandError, isAlive} from '../support/processes.js'

describe('ExecRunner', () => {
  const runner = new ExecRunner({timeoutSeconds: 10})
  let scratch: string
  const scratchFile = (name: string) => join(scratch, name)
  before(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'smartnat-runner-'))
  })
  after(async () => {
    await rm(scratch, {recursive: true, force: true})
  })

  it('hands the input to the process and returns its stdout and stderr whole, final newline included', async () => {
    const result = await runner.run('sh', ['-c', 'tr a-z A-Z; echo warning >&2'], {input: 'create set\nadd set 1\n'})
    expect(result).to.deep.equal({stdout: 'CREATE SET\nADD SET 1\n', stderr: 'warning\n', exitCode: 0})
  })

  it('carries payloads and outputs of several megabytes intact', async () => {
    const payload = 'add smartnat-allow 198.18.0.1,tcp:80,198.19.0.0/16\n'.repeat(200_000)
    const {stdout} = await runner.run('cat', [], {input: payload})
    expect(stdout.length).to.equal(payload.length)
    expect(stdout === payload).to.equal(true)
  })

  it("keeps nothing of a process's output once it returned it, though the process's pipes are closed only later", async () => {
    const before = heapUsedAfterCollection()
    // 20 MB, read back as a 15 MB `nft -j` listing is: held until the pipes close, it would be twice that (chunks and joined).
    const {length} = (await runner.run('head', ['-c', String(20_000_000), '/dev/zero'])).stdout
    expect(length).to.equal(20_000_000)
    // The job that resumed this test holds the value it resumed it with until it ends.
    await new Promise((resolve) => setImmediate(resolve))
    expect(heapUsedAfterCollection() - before).to.be.below(5_000_000)
  })

  it('lets go of the stdout callback, and what it holds, once the run returned, though the pipes are closed only later', async () => {
    const before = heapUsedAfterCollection()
    // What a reader made of the output so far (a parsed state: here 20 MB of strings) is reachable through its callback alone.
    const read = async () => {
      const made: string[] = []
      await runner.run('head', ['-c', String(20_000_000), '/dev/zero'], {onStdout: (chunk) => made.push(chunk.toString('latin1'))})
      return made.length
    }
    expect(await read()).to.be.above(1)
    await new Promise((resolve) => setImmediate(resolve))
    expect(heapUsedAfterCollection() - before).to.be.below(5_000_000)
  })

  it("keeps nothing of a run's input once it returned, though the process's pipes are closed only later", async () => {
    const before = heapUsedAfterCollection()
    // 20 MB, as a restore payload of megabytes is; made in a function of its own, so that nothing here holds it.
    const write = async () => (await runner.run('sh', ['-c', 'cat > /dev/null'], {input: '-A SNM-A-1 -j ACCEPT\n'.repeat(1_000_000)})).exitCode
    expect(await write()).to.equal(0)
    await new Promise((resolve) => setImmediate(resolve))
    expect(heapUsedAfterCollection() - before).to.be.below(5_000_000)
  })

  it('decodes characters whose bytes arrive in two chunks', async () => {
    // One ASCII byte first, so the pipe's 64 KiB chunks end in the middle of a two-byte character.
    const text = `x${'é'.repeat(100_000)}`
    const {stdout} = await runner.run('cat', [], {input: text})
    expect(stdout === text).to.equal(true)
  })

  it('hands stdout over as bytes, chunk by chunk, when asked, and then returns none', async () => {
    const payload = `${'add element 198.18.0.1 . tcp . 80\n'.repeat(100_000)}é`
    const chunks: Buffer[] = []
    const result = await runner.run('cat', [], {input: payload, onStdout: (chunk) => chunks.push(chunk)})
    expect(result.stdout).to.equal('')
    expect(chunks.length).to.be.above(1)
    expect(chunks.every((chunk) => Buffer.isBuffer(chunk))).to.equal(true)
    expect(Buffer.concat(chunks).toString('utf8') === payload).to.equal(true)
  })

  it('fails the run with what the stdout callback threw, and hands it nothing more', async () => {
    let calls = 0
    const thrown = new Error('not a listing')
    const failed = runner.run('head', ['-c', String(1_000_000), '/dev/zero'], {
      onStdout: () => {
        calls++
        throw thrown
      },
    })
    await failed.then(
      () => expect.fail('expected the run to fail'),
      (error: unknown) => expect(error).to.equal(thrown),
    )
    expect(calls).to.equal(1)
  })

  it('streamOutput gives a runner\'s collected stdout to the callback in one piece, and returns none', async () => {
    const fake = new RecordingRunner(() => ({stdout: 'table\n'}))
    const chunks: string[] = []
    const result = await streamOutput(fake, 'nft', ['-j', 'list', 'ruleset'], (chunk) => chunks.push(chunk.toString('utf8')))
    expect(chunks).to.deep.equal(['table\n'])
    expect(result).to.deep.equal({stdout: '', stderr: '', exitCode: 0})
    const streamed: string[] = []
    expect((await streamOutput(runner, 'echo', ['x'], (chunk) => streamed.push(chunk.toString('utf8')))).stdout).to.equal('')
    expect(streamed.join('')).to.equal('x\n')
  })

  it('runs the tools with LC_ALL=C and the rest of the environment inherited', async () => {
    const {stdout} = await runner.run('sh', ['-c', 'echo "$LC_ALL $PATH"'])
    expect(stdout).to.equal(`C ${process.env.PATH}\n`)
  })

  it('throws a CommandError with the exit code and stderr when the process fails', async () => {
    const error = await commandError(runner.run('sh', ['-c', 'echo "line 3 failed" >&2; exit 2']))
    expect(error.exitCode).to.equal(2)
    expect(error.stderr).to.equal('line 3 failed\n')
    expect(error.message).to.equal('sh -c echo "line 3 failed" >&2; exit 2 exited with 2: line 3 failed')
  })

  it('accepts the exit codes it is told are not errors', async () => {
    const result = await runner.run('sh', ['-c', 'exit 1'], {okExitCodes: [1]})
    expect(result.exitCode).to.equal(1)
  })

  it('reports the exit code of a process that exits without reading a large input', async () => {
    const error = await commandError(runner.run('sh', ['-c', 'exit 3'], {input: 'x'.repeat(8 * 1024 * 1024)}))
    expect(error.exitCode).to.equal(3)
  })

  it('says a command that is not installed could not be started', async () => {
    const error = await commandError(runner.run('smartnat-no-such-tool', ['save']))
    expect(error.exitCode).to.equal(undefined)
    expect(error.message).to.equal('smartnat-no-such-tool save could not be started (not found on PATH)')
  })

  // The commands below would run for 30 s, longer than the test's own timeout: waiting for them fails.
  it('stops a command that runs past the timeout and says it timed out', async () => {
    const pidFile = scratchFile('sleeper')
    const error = await commandError(new ExecRunner({timeoutSeconds: 0.2}).run('sh', ['-c', `echo $$ > ${pidFile}; exec sleep 30`]))
    expect(error.message).to.equal(`sh -c echo $$ > ${pidFile}; exec sleep 30 timed out`)
    expect(isAlive(await pidIn(pidFile)), 'the command is gone').to.equal(false)
  })

  it('kills a timed-out command that ignores SIGTERM', async () => {
    const pidFile = scratchFile('stubborn')
    const stubborn = new ExecRunner({timeoutSeconds: 0.2, killAfterMs: 300})
    // An ignored signal stays ignored across exec.
    const error = await commandError(stubborn.run('sh', ['-c', `trap "" TERM; echo $$ > ${pidFile}; exec sleep 30`]))
    expect(error.message).to.match(/ timed out$/)
    expect(isAlive(await pidIn(pidFile)), 'the command is gone').to.equal(false)
  })

  it('returns once the process exits, even when something it left behind keeps its output open', async () => {
    const pidFile = scratchFile('left-behind')
    const result = await runner.run('sh', ['-c', `echo started; sleep 30 & echo $! > ${pidFile}; exit 0`])
    expect(result).to.deep.equal({stdout: 'started\n', stderr: '', exitCode: 0})
    const leftBehind = await pidIn(pidFile)
    expect(isAlive(leftBehind), 'the process left behind, which holds the pipe, still runs').to.equal(true)
    process.kill(leftBehind, 'SIGKILL')
  })

  it('says which signal killed a command', async () => {
    const error = await commandError(runner.run('sh', ['-c', 'kill -KILL $$']))
    expect(error.exitCode).to.equal(undefined)
    expect(error.message).to.equal('sh -c kill -KILL $$ was killed by SIGKILL')
  })
})

async function pidIn(file: string): Promise<number> {
  return Number((await readFile(file, 'utf8')).trim())
}

