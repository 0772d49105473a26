/**
 * The iptables backend reads iptables-save and ipset save as they arrive, line by line: what it
 * reads is what parsing the whole text gives, wherever the chunks end, and it keeps no slice of a
 * line.
 */
import {expect} from 'chai'
import {IpsetSaveParser, IptablesSaveParser, parseIpsetSave, parseIptablesSave, type ParsedIpsets} from '../../src/lib/backend/iptables/parse.js'
import {readCountedIptablesState, readIptablesState, readIptablesTables} from '../../src/lib/backend/iptables/read.js'
import {CommandError, kernelLines, type RunOptions, type RunResult, type Runner} from '../../src/lib/host/runner.js'
import {ByteLines} from '../../src/lib/net/byte-lines.js'
import {IPSET_SAVE, IPTABLES_SAVE, IP_ROUTE_JSON, IP_RULE_JSON} from './fixtures/kernel-capture.js'
import {RecordingRunner} from '../support/recording-runner.js'
import {heapUsedAfterCollection} from '../support/heap-used.js'

// Owned chains and sets with characters of two, three and four bytes, a rule in each table, foreign rules between them.
const LISTING = IPTABLES_SAVE.replace(
  '-A SNM-A-1a2b3c4d -p udp',
  '-A SNM-A-1a2b3c4d -p tcp -m tcp --dport 81 -m comment --comment "café/€uro 😀 tcp/81" -j DNAT --to-destination 198.19.1.12:81\n-A SNM-A-1a2b3c4d -p udp',
)
const SETS = `${IPSET_SAVE}create SNM-EGRESS hash:ip family inet hashsize 1024 maxelem 65536 comment\nadd SNM-EGRESS 198.19.1.10 comment "ns/é €"\n`

/** What a command prints: its listing, or the captured `ip -j` output. */
function listingOf(listings: Record<string, string>, command: string, args: readonly string[]): string {
  return listings[[command, ...args].join(' ')] ?? (command === 'ip' ? (args.includes('rule') ? IP_RULE_JSON : IP_ROUTE_JSON) : '')
}

/** A runner that hands each command's listing over in chunks of `size` bytes, as a pipe does, when the caller takes stdout as bytes. */
class ChunkingRunner implements Runner {
  readonly streamed: string[] = []

  constructor(
    private readonly size: number,
    private readonly listings: Record<string, string>,
  ) {}

  async run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
    const key = [command, ...args].join(' ')
    const listing = listingOf(this.listings, command, args)
    if (!options.onStdout) return {stdout: listing, stderr: '', exitCode: 0}
    this.streamed.push(key)
    const bytes = Buffer.from(listing, 'utf8')
    for (let start = 0; start < bytes.length; start += this.size) options.onStdout(bytes.subarray(start, start + this.size))
    return {stdout: '', stderr: '', exitCode: 0}
  }
}

/** `text` handed to `parser` through a ByteLines in chunks of `size` bytes. */
function fedInChunks<T>(text: string, size: number, parser: {line(line: string): void; finish(): T}): T {
  const lines = new ByteLines((line) => parser.line(line))
  const bytes = Buffer.from(text, 'utf8')
  for (let start = 0; start < bytes.length; start += size) lines.push(bytes.subarray(start, start + size))
  lines.end()
  return parser.finish()
}

const CHUNK_SIZES = [1, 2, 3, 5, 7, 13, 64, 101, 4096, 65_536]

describe('the iptables backend’s streamed read', () => {
  it('parses iptables-save fed in chunks of any size as it parses the whole text', () => {
    const whole = parseIptablesSave(LISTING)
    expect(whole.nat.chains[0]!.rules[1]).to.include('café/€uro 😀')
    for (const size of CHUNK_SIZES) expect(fedInChunks(LISTING, size, new IptablesSaveParser()), `chunks of ${size} bytes`).to.deep.equal(whole)
  })

  it('parses ipset save fed in chunks of any size as it parses the whole text', () => {
    const whole = parseIpsetSave(SETS)
    expect(whole.sets.find((set) => set.name === 'SNM-EGRESS')!.entries).to.deep.equal(['198.19.1.10 comment "ns/é €"'])
    for (const size of CHUNK_SIZES) expect(fedInChunks(SETS, size, new IpsetSaveParser()), `chunks of ${size} bytes`).to.deep.equal(whole)
  })

  it('reads the state from listings handed over in chunks as from the whole texts, taking both listings as bytes', async () => {
    const listings = {'iptables-save': LISTING, 'ipset save': SETS, 'iptables-save -c': LISTING.replace(/^-A /gm, '[3:180] -A ')}
    const whole = await readIptablesState(new RecordingRunner((call) => ({stdout: listingOf(listings, call.command, call.args)})))
    expect(whole.ipRules).to.have.length(1)
    const parsed = parseIptablesSave(LISTING)
    expect(whole.tables).to.deep.equal({
      mangle: {chains: parsed.mangle.chains, jumps: parsed.mangle.jumps},
      nat: {chains: parsed.nat.chains, jumps: parsed.nat.jumps},
      filter: {chains: parsed.filter.chains, jumps: parsed.filter.jumps},
    })
    expect(whole.sets).to.deep.equal(parseIpsetSave(SETS).sets)
    for (const size of CHUNK_SIZES) {
      const runner = new ChunkingRunner(size, listings)
      expect(await readIptablesState(runner), `chunks of ${size} bytes`).to.deep.equal(whole)
      expect(await readIptablesTables(runner)).to.deep.equal(whole.tables)
      const counted = await readCountedIptablesState(runner)
      expect(counted.state).to.deep.equal(whole)
      expect(counted.counters.get('nat -A SNM-A-1a2b3c4d -p tcp -m tcp --dport 81 -m comment --comment "café/€uro 😀 tcp/81" -j DNAT --to-destination 198.19.1.12:81')).to.deep.equal({packets: 3, bytes: 180})
      expect(runner.streamed).to.deep.equal(['iptables-save', 'ipset save', 'iptables-save', 'iptables-save -c', 'ipset save'])
    }
  })

  it('names the command when it fails, and when its listing cannot be taken apart', async () => {
    const failing = new RecordingRunner((call) => (call.command === 'ipset' ? new CommandError('ipset', ['save'], 1, 'ipset v7.17: Kernel error') : {stdout: ''}))
    const error = await readIptablesState(failing).then(
      () => expect.fail('expected the read to fail'),
      (thrown: unknown) => thrown as Error,
    )
    expect(error.message).to.equal('reading kernel state: ipset save failed')
    expect(error.cause).to.be.instanceOf(CommandError)

    const unreadable = new Error('not a listing')
    const refused = await kernelLines(new ChunkingRunner(4, {'iptables-save': 'a\nb\n'}), ['iptables-save', []], () => {
      throw unreadable
    }).then(
      () => expect.fail('expected the read to fail'),
      (thrown: unknown) => thrown as Error,
    )
    expect(refused.message).to.equal('reading kernel state: iptables-save failed')
    expect(refused.cause).to.equal(unreadable)
  })

  it('keeps a set entry as a string of its own, not a slice of the line it came in (100,000 entries)', () => {
    // The set's name makes each line 40 bytes longer than its entry: kept alive by a slice, 100,000 lines are 4 MB more.
    const name = `SNM-${'E'.repeat(27)}`
    const listing = [`create ${name} hash:ip,port family inet hashsize 1024 maxelem 262144`]
    for (let i = 0; i < 100_000; i++) listing.push(`add ${name} 198.18.${(i >> 8) & 255}.${i & 255},tcp:${i % 65_535}`)
    const text = listing.join('\n')
    let entries = 0
    // Read and counted in a function of its own: a slot of this frame would keep what it reads alive.
    let read: ParsedIpsets | undefined = (() => {
      const sets = fedInChunks(text, 65_536, new IpsetSaveParser())
      entries = sets.sets[0]!.entries.length
      return sets
    })()
    const held = heapUsedAfterCollection()
    read = undefined
    const bytesPerEntry = (held - heapUsedAfterCollection()) / entries
    expect(read).to.equal(undefined)
    expect(entries).to.equal(100_000)
    // A flat string of ~20 characters and its slot: about 50 bytes; a slice and the line it keeps: about 120.
    expect(bytesPerEntry, `${bytesPerEntry.toFixed(0)} bytes an entry`).to.be.within(30, 80)
  })
})
