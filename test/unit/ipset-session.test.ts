import {expect} from 'chai'
import type {Conversation} from '../../src/lib/host/conversation.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {entryLines, IpsetSession, lineAnswers, MAX_SESSION_LINES, PROBE} from '../../src/lib/backend/iptables/ipset-session.js'
import {RecordingRunner} from '../support/recording-runner.js'

/** What ipset 7.17 says to the probe. */
const ANSWER = "ipset v7.17: Syntax error: typename 'smartnat_answered' is unknown\n"

/** A RecordingRunner that can keep `ipset -` open: each line asked is answered by `say` (its error, or nothing). */
class ConversingRunner extends RecordingRunner {
  readonly asked: string[] = []
  started = 0

  constructor(private readonly say: (line: string) => string = () => '') {
    super()
  }

  converse(): Conversation {
    this.started++
    let ended = false
    return {
      get ended() {
        return ended
      },
      close: () => {
        ended = true
      },
      ask: async (input, answered) => {
        this.asked.push(input)
        const output = input
          .split('\n')
          .filter((line) => line !== '' && line !== PROBE)
          .map((line) => `${this.say(line)}${ANSWER}`)
          .join('')
        // The first question is the probe alone.
        const said = input === `${PROBE}\n` ? ANSWER : output
        const end = answered(said)
        if (end === undefined) throw new Error(`the probe's answer was not recognised in ${JSON.stringify(said)}`)
        return said.slice(0, end)
      },
    }
  }
}

describe('iptables: the kept ipset -exist -', () => {
  it('splits what ipset said line by line at the answers to the probes', () => {
    const failed = 'ipset v7.17: The set with the given name does not exist\n'
    expect(lineAnswers(`${ANSWER}${failed}${ANSWER}`, 2)).to.deep.equal(['', failed])
    expect(lineAnswers(`${ANSWER}${failed}`, 2)).to.equal(undefined)
  })

  it('takes only payloads of entries added and deleted, and not too many', () => {
    expect(entryLines('add SNM-ALLOW 198.18.0.1,tcp:80,198.18.9.0/24\ndel SNM-EG-1 198.19.0.5\n')).to.deep.equal(['add SNM-ALLOW 198.18.0.1,tcp:80,198.18.9.0/24', 'del SNM-EG-1 198.19.0.5'])
    expect(entryLines('create SNM-X hash:ip family inet\nadd SNM-X 198.18.0.1\n')).to.equal(undefined)
    expect(entryLines('swap SNM-X-T SNM-X\n')).to.equal(undefined)
    expect(entryLines('')).to.equal(undefined)
    expect(entryLines('add SNM-X 198.18.0.1\n'.repeat(MAX_SESSION_LINES))).to.have.length(MAX_SESSION_LINES)
    expect(entryLines('add SNM-X 198.18.0.1\n'.repeat(MAX_SESSION_LINES + 1))).to.equal(undefined)
  })

  it('asks each line followed by the probe, in one write, after a first probe; starts no process', async () => {
    const runner = new ConversingRunner()
    const session = new IpsetSession(runner)
    const result = await session.run('ipset', ['restore', '-exist'], {input: 'add SNM-A 198.18.0.1\ndel SNM-A 198.18.0.2\n'})
    expect(result).to.deep.equal({stdout: '', stderr: '', exitCode: 0})
    expect(runner.asked).to.deep.equal([`${PROBE}\n`, `add SNM-A 198.18.0.1\n${PROBE}\ndel SNM-A 198.18.0.2\n${PROBE}\n`])
    await session.run('ipset', ['restore', '-exist'], {input: 'add SNM-A 198.18.0.3\n'})
    expect(runner.started).to.equal(1)
    expect(runner.calls).to.deep.equal([])
  })

  it('fails as ipset restore does, each failed line named by its payload line', async () => {
    const runner = new ConversingRunner((line) => (line.includes('SNM-GONE') ? 'ipset v7.17: The set with the given name does not exist\n' : ''))
    const session = new IpsetSession(runner)
    let failure: unknown
    try {
      await session.run('ipset', ['restore', '-exist'], {input: 'add SNM-A 198.18.0.1\nadd SNM-GONE 198.18.0.2\n'})
    } catch (error) {
      failure = error
    }
    expect(failure).to.be.instanceOf(CommandError)
    expect((failure as CommandError).stderr).to.equal('line 2: ipset v7.17: The set with the given name does not exist\n')
    expect((failure as CommandError).message).to.match(/^ipset restore -exist exited with 1: line 2: /)
  })

  it('runs ipset restore for anything else, and for everything once ipset did not answer the first probe', async () => {
    const runner = new ConversingRunner()
    const session = new IpsetSession(runner)
    await session.run('ipset', ['restore', '-exist'], {input: 'create SNM-X hash:ip family inet\n'})
    await session.run('ipset', ['save'])
    expect(runner.calls.map((call) => [call.command, ...call.args].join(' '))).to.deep.equal(['ipset restore -exist', 'ipset save'])
    expect(runner.started).to.equal(0)

    const mute = new RecordingRunner() as RecordingRunner & {converse: () => Conversation}
    let started = 0
    mute.converse = () => {
      started++
      return {ended: false, close: () => undefined, ask: () => Promise.reject(new CommandError('ipset', ['-exist', '-'], undefined, '', {timedOut: true}))}
    }
    const unanswered = new IpsetSession(mute)
    await unanswered.run('ipset', ['restore', '-exist'], {input: 'add SNM-A 198.18.0.1\n'})
    await unanswered.run('ipset', ['restore', '-exist'], {input: 'add SNM-A 198.18.0.2\n'})
    expect(mute.calls.map((call) => call.input)).to.deep.equal(['add SNM-A 198.18.0.1\n', 'add SNM-A 198.18.0.2\n'])
    expect(started).to.equal(1)
  })
})
