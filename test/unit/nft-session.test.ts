import {expect} from 'chai'
import type {Conversation} from '../../src/lib/host/conversation.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {ApplyError} from '../../src/lib/backend/result.js'
import {applyNftables} from '../../src/lib/backend/nftables/apply.js'
import {nftablesBackend} from '../../src/lib/backend/nftables/backend.js'
import {renderNftables} from '../../src/lib/backend/nftables/render.js'
import {MAX_SESSION_PAYLOAD, NftSession, PROBE, QUESTIONS_PER_PROCESS, probeAnswered, sessionLine, transactionOutcome} from '../../src/lib/backend/nftables/session.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {sampleModel} from './nat-model-fixture.js'

/** What nft 1.0.6 says to the probe. */
const ANSWER = `Error: syntax error, unexpected newline, expecting string\n${PROBE}\n                 ^\n`

/** A RecordingRunner that can also keep `nft -i` open: each question is answered by `say` (what nft prints before the probe's answer). */
class ConversingRunner extends RecordingRunner {
  readonly questions: string[] = []
  started = 0
  closed = 0

  constructor(private readonly say: (question: string) => string | Error = () => '') {
    super()
  }

  converse(): Conversation {
    this.started++
    let ended = false
    const close = () => {
      ended = true
      this.closed++
    }
    return {
      get ended() {
        return ended
      },
      close,
      ask: async (input, answered) => {
        this.questions.push(input)
        const said = this.say(input)
        if (said instanceof Error) {
          ended = true
          throw said
        }
        const output = `${said}${ANSWER}`
        const end = answered(output)
        if (end === undefined) throw new Error(`the probe's answer was not recognised in ${JSON.stringify(output)}`)
        return output.slice(0, end)
      },
    }
  }
}

function elementChange(): {before: ReturnType<typeof renderNftables>; after: ReturnType<typeof renderNftables>} {
  const before = renderNftables(sampleModel())
  const model = sampleModel()
  model.mappings[0]!.endpoints[0]!.targetPort = 9090
  return {before, after: renderNftables(model)}
}

describe('nftables: the kept nft -i', () => {
  it('finds the end of the probe answer, and what nft said before it', () => {
    expect(probeAnswered(ANSWER.slice(0, -1))).to.equal(undefined)
    const failed = `Error: No such file or directory\nadd element ip smartnat x { 1 }\n                 ^\n`
    expect(probeAnswered(`${failed}${ANSWER}`)).to.equal(`${failed}${ANSWER}`.length)
    expect(transactionOutcome(`${failed}${ANSWER}`)).to.deep.equal({said: failed, failed: true})
    expect(transactionOutcome(ANSWER)).to.deep.equal({said: '', failed: false})
    // A warning is no failure.
    expect(transactionOutcome(`Warning: something\n${ANSWER}`).failed).to.equal(false)
  })

  it('joins a payload of one-line commands into one line: one transaction', () => {
    expect(sessionLine('delete element ip smartnat a { 1 }\nadd element ip smartnat a { 2 }\n')).to.equal('delete element ip smartnat a { 1 }; add element ip smartnat a { 2 }')
  })

  it('writes an element change as one line followed by the probe, after a first probe that checks nft -i answers, and starts no nft -f', async () => {
    const {before, after} = elementChange()
    const runner = new ConversingRunner()
    const session = new NftSession(runner)
    await applyNftables(runner, after, {assumeActual: before}, session)
    expect(runner.calls).to.deep.equal([])
    expect(runner.questions).to.have.length(2)
    expect(runner.questions[0]).to.equal(`${PROBE}\n`)
    const [line, probe, end] = runner.questions[1]!.split('\n')
    expect([probe, end]).to.deep.equal([PROBE, ''])
    expect(line!.split('; ').map((command) => command.split(' {')[0])).to.deep.equal(['delete element ip smartnat endpoints', 'add element ip smartnat endpoints'])
    // A second change asks on the same process.
    await applyNftables(runner, before, {assumeActual: after}, session)
    expect(runner.started).to.equal(1)
    expect(runner.questions).to.have.length(3)
  })

  it('fails the apply with what nft said when the transaction fails, and asks again on the same process', async () => {
    const {before, after} = elementChange()
    let fail = true
    const runner = new ConversingRunner((question) => (question.startsWith('delete') && fail ? 'Error: Could not process rule: No such file or directory\n' : ''))
    const session = new NftSession(runner)
    const error = await applyNftables(runner, after, {assumeActual: before}, session).then(
      () => expect.fail('apply succeeded'),
      (e: unknown) => e as ApplyError,
    )
    expect(error).to.be.instanceOf(ApplyError)
    expect(error.forceFull).to.equal(true)
    expect(error.message).to.include('nft failed\nError: Could not process rule: No such file or directory')
    expect((error.cause as CommandError).command).to.equal('nft')
    fail = false
    await applyNftables(runner, after, {assumeActual: before}, session)
    expect(runner.started).to.equal(1)
  })

  it('starts nft -i again after it ended, and after QUESTIONS_PER_PROCESS transactions', async () => {
    const {before, after} = elementChange()
    let died = false
    const runner = new ConversingRunner((question) => (question.startsWith('delete') && !died ? ((died = true), new CommandError('nft', ['-i'], 1, 'gone')) : ''))
    const session = new NftSession(runner)
    await applyNftables(runner, after, {assumeActual: before}, session).then(
      () => expect.fail('apply succeeded'),
      (e: unknown) => expect(e).to.be.instanceOf(ApplyError),
    )
    await applyNftables(runner, after, {assumeActual: before}, session)
    expect(runner.started).to.equal(2)
    for (let i = 1; i < QUESTIONS_PER_PROCESS; i++) await applyNftables(runner, after, {assumeActual: before}, session)
    expect(runner.closed).to.equal(1)
    await applyNftables(runner, after, {assumeActual: before}, session)
    expect(runner.started).to.equal(3)
    expect(runner.calls).to.deep.equal([])
  })

  it('uses nft -f for good when nft -i does not answer the probe, and for payloads other than elements or too large', async () => {
    const {before, after} = elementChange()
    const mute = new ConversingRunner(() => new CommandError('nft', ['-i'], 1, 'Error: interactive CLI not supported in this build'))
    const session = new NftSession(mute)
    await applyNftables(mute, after, {assumeActual: before}, session)
    await applyNftables(mute, before, {assumeActual: after}, session)
    expect(mute.started).to.equal(1)
    expect(mute.calls.map((call) => [call.command, ...call.args].join(' '))).to.deep.equal(['nft -f -', 'nft -f -'])

    const runner = new ConversingRunner()
    const kept = new NftSession(runner)
    // No table yet: the whole table, through nft -f.
    await applyNftables(runner, after, {assumeActual: {ipRules: [], routes: []}}, kept)
    expect(runner.calls.map((call) => [call.command, ...call.args].join(' '))).to.deep.equal(['nft -f -', 'ip -batch -'])
    expect(runner.questions).to.deep.equal([])
    expect(await kept.takes('x'.repeat(MAX_SESSION_PAYLOAD + 1))).to.equal(false)
    expect(runner.started).to.equal(0)
  })

  it('is not used where the runner cannot keep a process open', async () => {
    const {before, after} = elementChange()
    const runner = new RecordingRunner()
    await applyNftables(runner, after, {assumeActual: before}, new NftSession(runner))
    expect(runner.calls.map((call) => call.command)).to.deep.equal(['nft'])
  })

  it('is the backend\'s only when it is long-lived (a daemon\'s)', async () => {
    const {before, after} = elementChange()
    for (const longLived of [false, true]) {
      const runner = new ConversingRunner()
      await nftablesBackend(runner, {longLived}).apply(after, {assumeActual: before})
      expect([runner.started, runner.calls.length], `longLived ${longLived}`).to.deep.equal(longLived ? [1, 0] : [0, 1])
    }
  })
})
