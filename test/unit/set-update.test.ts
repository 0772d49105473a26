import {expect} from 'chai'
import fc from 'fast-check'
import {applyIptables} from '../../src/lib/backend/iptables/apply.js'
import {diffIptablesState, isEmptyChanges, type SetChanges} from '../../src/lib/backend/iptables/diff.js'
import {ipsetCleanupPayload, ipsetPreparePayload, ipsetRollbackPayload} from '../../src/lib/backend/iptables/payloads.js'
import type {IpsetState, IptablesState} from '../../src/lib/backend/iptables/types.js'
import {CommandError} from '../../src/lib/host/runner.js'
import {RecordingRunner} from '../support/recording-runner.js'

const OPTIONS = 'family inet hashsize 1024 maxelem 65536'

function allowEntries(count: number): string[] {
  return Array.from({length: count}, (_, i) => `198.18.${i >> 8}.${i & 255},tcp:80,198.18.100.0/24`).sort()
}

function allowSet(entries: string[], options = OPTIONS): IpsetState {
  return {name: 'SNM-ALLOW', type: 'hash:ip,port,net', options, entries}
}

function stateWith(sets: IpsetState[]): IptablesState {
  const empty = {chains: [], jumps: []}
  return {tables: {mangle: empty, nat: empty, filter: empty}, sets, ipRules: [], routes: []}
}

function setChanges(desired: IpsetState[], actual: IpsetState[], full = false): SetChanges {
  return diffIptablesState(stateWith(desired), stateWith(actual), {full}).sets
}

function ipsetSave(set: IpsetState): string {
  return [`create ${set.name} ${set.type} ${set.options} bucketsize 12 initval 0x1234abcd`, ...set.entries.map((e) => `add ${set.name} ${e}`), ''].join('\n')
}

describe('in-place ipset updates', () => {
  const actual = allowEntries(1000)
  const oneChanged = [...actual.slice(1), '198.18.99.1,tcp:443,198.18.100.0/24'].sort()

  it('adds and deletes only the changed entries of a large set instead of refilling it', () => {
    const changes = setChanges([allowSet(oneChanged)], [allowSet(actual)])
    expect(changes.replace).to.deep.equal([])
    expect(changes.update).to.have.length(1)
    expect(changes.update[0]!.add).to.deep.equal(['198.18.99.1,tcp:443,198.18.100.0/24'])
    expect(changes.update[0]!.del).to.deep.equal([actual[0]])
    expect(changes.update[0]!.deleteFirst).to.equal(false)
  })

  it('writes the additions before the deletions, with no temporary set and nothing to clean up', () => {
    const changes = setChanges([allowSet(oneChanged)], [allowSet(actual)])
    expect(ipsetPreparePayload(changes)).to.equal(`add SNM-ALLOW 198.18.99.1,tcp:443,198.18.100.0/24\ndel SNM-ALLOW ${actual[0]}\n`)
    expect(ipsetCleanupPayload(changes)).to.equal('')
  })

  it('deletes first when adding first would push the set past its maxelem', () => {
    const full = allowEntries(16)
    const changes = setChanges([allowSet([...full.slice(1), '198.18.99.1,tcp:443,198.18.100.0/24'], 'family inet maxelem 16')], [allowSet(full, 'family inet maxelem 16')])
    expect(changes.update[0]!.deleteFirst).to.equal(true)
    expect(ipsetPreparePayload(changes).split('\n').slice(0, 2)).to.deep.equal([`del SNM-ALLOW ${full[0]}`, 'add SNM-ALLOW 198.18.99.1,tcp:443,198.18.100.0/24'])
  })

  it('refills and swaps when more than half of the entries change', () => {
    const changes = setChanges([allowSet(allowEntries(10).slice(5))], [allowSet(allowEntries(10).slice(0, 6))])
    expect(changes.update).to.deep.equal([])
    expect(changes.replace.map((s) => s.name)).to.deep.equal(['SNM-ALLOW'])
  })

  it('refills and swaps when the options differ, however small the change', () => {
    const changes = setChanges([allowSet(oneChanged, 'family inet hashsize 1024 maxelem 131072')], [allowSet(actual)])
    expect(changes.update).to.deep.equal([])
    expect(changes.replace).to.have.length(1)
  })

  it('refills and swaps every set on a full apply', () => {
    const changes = setChanges([allowSet(oneChanged)], [allowSet(actual)], true)
    expect(changes.update).to.deep.equal([])
    expect(changes.replace).to.have.length(1)
  })

  it('finds exactly the entries only one side has, sorted or not, with or without repeats', () => {
    const universe = allowEntries(40)
    const side = fc.tuple(fc.subarray(universe), fc.boolean(), fc.boolean()).map(([entries, shuffled, repeated]) => {
      const listed = repeated ? [...entries, ...entries.slice(0, 3)] : entries
      return shuffled ? [...listed].reverse() : [...listed].sort()
    })
    fc.assert(
      fc.property(side, side, (desired, actual) => {
        const update = setChanges([allowSet(desired)], [allowSet(actual)]).update[0]
        const onlyIn = (a: string[], b: string[]) => [...new Set(a)].filter((e) => !b.includes(e))
        const add = onlyIn(desired, actual)
        const del = onlyIn(actual, desired)
        if (add.length + del.length === 0 || 2 * (add.length + del.length) > desired.length) return
        expect(update?.add).to.deep.equal(add)
        expect(update?.del).to.deep.equal(del)
      }),
      {numRuns: 500},
    )
  })

  it('sees no change when the same entries come in another order, and says so', () => {
    const changes = diffIptablesState(stateWith([allowSet(actual)]), stateWith([allowSet([...actual].reverse())]))
    expect(changes.sets.update).to.deep.equal([])
    expect(isEmptyChanges(changes)).to.equal(true)
  })

  it('counts an in-place update as a change', () => {
    expect(isEmptyChanges(diffIptablesState(stateWith([allowSet(oneChanged)]), stateWith([allowSet(actual)])))).to.equal(false)
  })

  it('rolls an in-place update back by deleting what it added and adding back what it deleted', () => {
    const changes = setChanges([allowSet(oneChanged)], [allowSet(actual)])
    expect(ipsetRollbackPayload(changes, [])).to.equal(`del SNM-ALLOW 198.18.99.1,tcp:443,198.18.100.0/24\nadd SNM-ALLOW ${actual[0]}\n`)
  })

  it('applies one changed entry as one small ipset restore, and undoes it when iptables-restore fails', async () => {
    const kernel = (failRules: boolean) =>
      new RecordingRunner((call) => {
        const line = [call.command, ...call.args].join(' ')
        if (line === 'ipset save') return {stdout: ipsetSave(allowSet(actual))}
        if (line.startsWith('ip -4 -j')) return {stdout: '[]'}
        if (failRules && call.command === 'iptables-restore') return new CommandError('iptables-restore', call.args, 1, 'Error occurred at line: 2')
        return {}
      })
    const desired = stateWith([allowSet(oneChanged)])
    desired.tables.filter = {chains: [{name: 'SNM-INPUT', rules: ['-A SNM-INPUT -j DROP']}], jumps: []}

    const ok = kernel(false)
    const result = await applyIptables(ok, desired)
    const ipsetWrites = ok.calls.filter((c) => c.command === 'ipset' && c.args[0] === 'restore')
    expect(ipsetWrites.map((c) => c.input)).to.deep.equal([`add SNM-ALLOW 198.18.99.1,tcp:443,198.18.100.0/24\ndel SNM-ALLOW ${actual[0]}\n`])
    expect(result.changed).to.equal(true)

    const failing = kernel(true)
    const error = await applyIptables(failing, desired).then(() => expect.fail('apply succeeded'), (e: unknown) => e as Error)
    expect(error.message).to.include('iptables-restore failed')
    const restores = failing.calls.filter((c) => c.command === 'ipset' && c.args[0] === 'restore').map((c) => c.input)
    expect(restores).to.deep.equal([
      `add SNM-ALLOW 198.18.99.1,tcp:443,198.18.100.0/24\ndel SNM-ALLOW ${actual[0]}\n`,
      `del SNM-ALLOW 198.18.99.1,tcp:443,198.18.100.0/24\nadd SNM-ALLOW ${actual[0]}\n`,
    ])
  })
})
