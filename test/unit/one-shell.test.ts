/** Several commands from one shell (src/lib/host/one-shell.ts), run by a real `sh`: each command's output and exit status, framed apart. */
import {expect} from 'chai'
import {mkdtemp, rm, writeFile} from 'node:fs/promises'
import {tmpdir} from 'node:os'
import {join} from 'node:path'

import {oneShellRunner, runInOneShell, type ShellCommand} from '../../src/lib/host/one-shell.js'
import {CommandError, ExecRunner, type RunOptions, type Runner} from '../../src/lib/host/runner.js'
import {RecordingRunner} from '../support/recording-runner.js'

const runner = new ExecRunner({timeoutSeconds: 10})

describe('runInOneShell', () => {
  it('gives each command its own stdout, stderr and exit status, exactly as printed', async () => {
    const runs = await runInOneShell(runner, [
      ['printf', ['first']],
      ['ls', ['/nonexistent-smartnat-path']],
      ['no-such-tool-smartnat', ['--version']],
      ['printf', ['two\\n\\nlines\\n\\n']],
      ['echo', ['last']],
      // Last, and only on stderr.
      ['ls', ['/nonexistent-smartnat-last']],
    ])
    expect(runs?.map((r) => [r.stdout, r.exitCode])).to.deep.equal([
      ['first', 0],
      ['', 2],
      ['', 127],
      ['two\n\nlines\n\n', 0],
      ['last\n', 0],
      ['', 2],
    ])
    expect(runs![1]!.stderr).to.match(/^ls: [^\n]*nonexistent-smartnat-path[^\n]*\n$/)
    expect(runs![2]!.stderr).to.match(/no-such-tool-smartnat.*not found\n$/)
    expect(runs![5]!.stderr).to.match(/^ls: [^\n]*nonexistent-smartnat-last[^\n]*\n$/)
    expect([runs![0]!.stderr, runs![3]!.stderr, runs![4]!.stderr]).to.deep.equal(['', '', ''])
  })

  it('is undefined when the shell fails or prints something else than the frames', async () => {
    expect(await runInOneShell(new RecordingRunner(() => ({exitCode: 2})), [['true', []]])).to.equal(undefined)
    expect(await runInOneShell(new RecordingRunner(() => ({stdout: 'true\n'})), [['true', []]])).to.equal(undefined)
  })

  it('passes every word as it is, quoted for the shell, and a shell inside it frames its own output apart', async () => {
    const word = `a; echo "$HOME" 'it''s' \\ \n*`
    const inner = ['sh', ['-c', `echo; echo ${'@@smartnat-command'} 0 exit 9`]] as const
    const runs = await runInOneShell(runner, [['printf', ['%s', word]], ['true', []], inner, ['echo', ['after']]])
    expect(runs?.map((r) => [r.stdout, r.exitCode])).to.deep.equal([
      [word, 0],
      ['', 0],
      ['\n@@smartnat-command 0 exit 9\n', 0],
      ['after\n', 0],
    ])
    const nested = await runInOneShell(runner, [['echo', ['outer']], ['sh', ['-c', 'echo inner']]])
    expect(nested?.map((r) => r.stdout)).to.deep.equal(['outer\n', 'inner\n'])
  })

  it('asks for the same shell for the same commands, as a read that may be started ahead, and frames other commands with another marker', async () => {
    const asked: {args: string[]; options: RunOptions | undefined}[] = []
    const capturing: Runner = {
      run: async (_command, args, options) => {
        asked.push({args, options})
        return {stdout: '', stderr: '', exitCode: 0}
      },
    }
    const commands: ShellCommand[] = [['iptables-save', ['-c']], ['ipset', ['save']]]
    await runInOneShell(capturing, commands)
    await runInOneShell(capturing, commands)
    await runInOneShell(capturing, [['iptables-save', []], ['ipset', ['save']]])
    expect(asked[1]!.args).to.deep.equal(asked[0]!.args)
    expect(asked.map(({options}) => options?.readAhead)).to.deep.equal([true, true, true])
    const mark = (args: string[]) => /@@smartnat-command-\w+/.exec(args[1]!)?.[0]
    expect(mark(asked[2]!.args)).to.be.a('string').and.not.equal(mark(asked[0]!.args))
  })
})

describe('oneShellRunner', () => {
  const line = (command: string, args: string[]) => [command, ...args].join(' ')

  it('runs the commands asked for in one turn as one shell, each answering as it would alone', async () => {
    const shell = new RecordingShell()
    const batching = oneShellRunner(shell)
    const [a, b, c, d] = await Promise.allSettled([
      batching.run('echo', ['one']),
      batching.run('sh', ['-c', 'echo two; echo warned >&2']),
      batching.run('sh', ['-c', 'exit 1'], {okExitCodes: [1]}),
      batching.run('ls', ['/nonexistent-smartnat-path']),
    ])
    expect(shell.lines).to.have.length(1)
    expect(shell.lines[0]).to.match(/^sh -c /)
    expect(a).to.deep.equal({status: 'fulfilled', value: {stdout: 'one\n', stderr: '', exitCode: 0}})
    expect(b).to.deep.equal({status: 'fulfilled', value: {stdout: 'two\n', stderr: 'warned\n', exitCode: 0}})
    expect(c).to.deep.equal({status: 'fulfilled', value: {stdout: '', stderr: '', exitCode: 1}})
    expect(d.status).to.equal('rejected')
    const error = (d as PromiseRejectedResult).reason as CommandError
    expect(error).to.be.instanceOf(CommandError)
    expect(error.message).to.match(/^ls \/nonexistent-smartnat-path exited with 2: ls: .*nonexistent-smartnat-path/)
  })

  it('runs alone a command with input, a command asked for alone, and one the shell cannot find', async () => {
    const shell = new RecordingShell()
    const batching = oneShellRunner(shell)
    expect((await batching.run('cat', [], {input: 'fed'})).stdout).to.equal('fed')
    expect((await batching.run('echo', ['alone'])).stdout).to.equal('alone\n')
    const [found, missing] = await Promise.allSettled([batching.run('echo', ['found']), batching.run('no-such-tool-smartnat', ['--version'])])
    expect(found).to.deep.equal({status: 'fulfilled', value: {stdout: 'found\n', stderr: '', exitCode: 0}})
    // As a process of its own: it could not be started, which is how a missing tool is told.
    expect((missing as PromiseRejectedResult).reason).to.include({exitCode: undefined})
    expect(shell.lines.map((l) => l.split(' ')[0])).to.deep.equal(['cat', 'echo', 'sh', 'no-such-tool-smartnat'])
  })

  describe('ip reads asked for together', () => {
    // A stand-in for ip on PATH: alone it prints its options (in any order, as ip takes them) and words
    // as JSON, with -batch one line per command read; `rule show fail` fails as ip does, which stops a batch.
    const FAKE_IP = `#!/bin/sh
f4=""; fj=""; while [ "\${1#-}" != "$1" ] && [ "$1" != "-batch" ]; do case "$1" in -4) f4=4;; -j) fj=j;; esac; shift; done; opts="$f4$fj"
if [ "$1" = "-batch" ]; then
  while read -r line; do
    case "$line" in *fail*) echo 'Command failed -:1' >&2; exit 1;; esac
    printf '["%s","%s"]\\n' "$opts" "$line"
  done
  exit 0
fi
case "$*" in *fail*) echo 'Error: failed' >&2; exit 2;; esac
printf '["%s","%s"]\\n' "$opts" "$*"
`
    let dir: string
    let path: string | undefined
    beforeEach(async () => {
      dir = await mkdtemp(join(tmpdir(), 'smartnat-one-shell-'))
      await writeFile(join(dir, 'ip'), FAKE_IP, {mode: 0o755})
      path = process.env.PATH
      process.env.PATH = `${dir}:${path ?? ''}`
    })
    afterEach(async () => {
      process.env.PATH = path
      await rm(dir, {recursive: true, force: true})
    })

    it('run as one ip -batch, each answering what it prints alone', async () => {
      const shell = new RecordingShell()
      const batching = oneShellRunner(shell)
      const results = await Promise.all([
        batching.run('ip', ['-4', '-j', 'rule', 'show']),
        batching.run('echo', ['between']),
        batching.run('ip', ['-4', '-j', 'route', 'show', 'table', 'all']),
        batching.run('ip', ['-j', '-4', 'addr', 'show']),
        batching.run('ip', ['-j', 'link', 'show']),
        batching.run('ip', ['-4', 'route', 'show']),
      ])
      expect(shell.lines).to.have.length(1)
      const script = shell.lines[0]!
      expect(script.match(/ip -4 -j -batch -/g)).to.have.length(1)
      expect(script).not.to.match(/ip -4 -j rule|ip -j -4 addr/)
      const alone = await Promise.all([
        shell.run('ip', ['-4', '-j', 'rule', 'show']),
        shell.run('echo', ['between']),
        shell.run('ip', ['-4', '-j', 'route', 'show', 'table', 'all']),
        shell.run('ip', ['-j', '-4', 'addr', 'show']),
        shell.run('ip', ['-j', 'link', 'show']),
        shell.run('ip', ['-4', 'route', 'show']),
      ])
      expect(results).to.deep.equal(alone)
      expect(results.map((r) => r.stdout)).to.deep.equal([
        '["4j","rule show"]\n',
        'between\n',
        '["4j","route show table all"]\n',
        '["4j","addr show"]\n',
        '["j","link show"]\n',
        '["4","route show"]\n',
      ])
    })

    it('run alone when the batch fails, so that each fails or answers as alone', async () => {
      const shell = new RecordingShell()
      const batching = oneShellRunner(shell)
      const [rule, addr] = await Promise.allSettled([batching.run('ip', ['-4', '-j', 'rule', 'show', 'fail']), batching.run('ip', ['-4', '-j', 'addr', 'show'])])
      expect(shell.lines.map((l) => l.split(' ').slice(0, 2).join(' '))).to.deep.equal(['sh -c', 'ip -4', 'ip -4'])
      expect(((rule as PromiseRejectedResult).reason as CommandError).exitCode).to.equal(2)
      expect(addr).to.deep.equal({status: 'fulfilled', value: {stdout: '["4j","addr show"]\n', stderr: '', exitCode: 0}})
    })
  })

  it('runs each command alone when the shell fails', async () => {
    const answered = new RecordingRunner((call) => (call.command === 'sh' ? {exitCode: 126, stderr: 'sh: denied'} : {stdout: `${line(call.command, call.args)}\n`}))
    const batching = oneShellRunner(answered)
    const results = await Promise.all([batching.run('ip', ['-V']), batching.run('nft', ['-j', 'list', 'chains'])])
    expect(results.map((r) => r.stdout)).to.deep.equal(['ip -V\n', 'nft -j list chains\n'])
    expect(answered.calls.map((c) => c.command)).to.deep.equal(['sh', 'ip', 'nft'])
  })
})

/** The real runner, recording what it starts. */
class RecordingShell extends ExecRunner {
  readonly lines: string[] = []

  constructor() {
    super({timeoutSeconds: 10})
  }

  override async run(command: string, args: string[], options?: Parameters<ExecRunner['run']>[2]) {
    this.lines.push([command, ...args].join(' '))
    return super.run(command, args, options)
  }
}

describe('oneShellRunner: sysctl reads', () => {
  /** The real runner, noting each command it is asked to start. */
  class Noting extends ExecRunner {
    started: string[] = []
    override run(command: string, args: string[], options?: Parameters<ExecRunner['run']>[2]) {
      this.started.push([command, ...args].join(' '))
      return super.run(command, args, options)
    }
  }

  it('reads the values with the shell itself, as `sysctl -n` prints them, dotted and slashed keys alike', async () => {
    const keys = ['net.ipv4.ip_forward', 'net/ipv4/conf/all/rp_filter', 'kernel.ostype']
    const expected = await runner.run('sysctl', ['-n', ...keys])
    const noting = new Noting({timeoutSeconds: 10})
    const batching = oneShellRunner(noting)
    const [values, echoed] = await Promise.all([batching.run('sysctl', ['-n', ...keys]), batching.run('echo', ['beside'])])
    expect(values).to.deep.equal({stdout: expected.stdout, stderr: '', exitCode: 0})
    expect(echoed.stdout).to.equal('beside\n')
    expect(noting.started).to.have.length(1)
    expect(noting.started[0]).to.match(/^sh -c /).and.not.include('sysctl')
  })

  it('leaves to sysctl a key the shell cannot read, which then fails as sysctl does', async () => {
    const noting = new Noting({timeoutSeconds: 10})
    const batching = oneShellRunner(noting)
    const [missing] = await Promise.allSettled([batching.run('sysctl', ['-n', 'net.ipv4.ip_forward', 'net.smartnat.no_such_key']), batching.run('true', [])])
    expect(missing.status).to.equal('rejected')
    expect((missing as PromiseRejectedResult).reason).to.be.instanceOf(CommandError)
    expect(noting.started.at(-1)).to.equal('sysctl -n net.ipv4.ip_forward net.smartnat.no_such_key')
  })
})
