/** An egress set's records kept in chunks (src/lib/backend/nftables/egress-runs.ts), changed as a sorted list of them would be. */
import {expect} from 'chai'
import fc from 'fast-check'
import {changedRun, egressRun, findRecord, printRun, type EgressRun} from '../../src/lib/backend/nftables/egress-runs.js'
import type {Ipv4} from '../../src/lib/net/ipv4.js'

/** Pods as short keys, and a look that tells records of one key apart. */
const POD = fc.integer({min: 0, max: 40}).map((n) => `198.19.0.${n}` as Ipv4)
const byKey = (pod: Ipv4) => pod
const records = (run: EgressRun<string>) => printRun(run, (pod, look) => `${pod} ${look}`)

/** The same change made to a sorted list of records. */
function reference(before: Map<Ipv4, string>, remove: Ipv4[], insert: [Ipv4, string][]): Map<Ipv4, string> {
  const after = new Map(before)
  for (const pod of remove) after.delete(pod)
  for (const [pod, look] of insert) after.set(pod, look)
  return new Map([...after].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
}

const changes = fc.array(fc.record({remove: fc.array(POD, {maxLength: 6}), insert: fc.array(fc.tuple(POD, fc.string({maxLength: 3})), {maxLength: 6})}), {maxLength: 8})

describe('egress runs', () => {
  it('change as a sorted list of records does, whatever the changes, in chunks never empty nor past twice their size', () => {
    fc.assert(
      fc.property(fc.uniqueArray(POD), fc.integer({min: 1, max: 4}), changes, (start, size, steps) => {
        let expected = reference(new Map(), [], start.map((pod) => [pod, 'first']))
        let run = egressRun([...expected.keys()], [...expected.values()], size)
        for (const {remove, insert} of steps) {
          const before = records(run)
          const next = changedRun(run, byKey, remove, insert, size)
          expected = reference(expected, remove, insert)
          expect(records(next)).to.deep.equal([...expected].map(([pod, look]) => `${pod} ${look}`))
          expect(records(run), 'the run changed from').to.deep.equal(before)
          for (const {pods, looks} of next.chunks) {
            expect(pods.length).to.be.within(1, 2 * size)
            expect(looks.length).to.equal(pods.length)
          }
          for (const pod of [...remove, ...insert.map(([p]) => p)]) expect(findRecord(next, pod, byKey)).to.deep.equal(expected.has(pod) ? [pod, expected.get(pod)] : undefined)
          run = next
        }
      }),
      {numRuns: 300},
    )
  })

  it('copies only the chunks a change falls in', () => {
    const pods = Array.from({length: 12}, (_, i) => `198.19.0.${10 + i}` as Ipv4)
    const run = egressRun(pods, pods.map(() => 'look'), 4)
    const next = changedRun(run, byKey, ['198.19.0.15'], [['198.19.0.16' as Ipv4, 'other']], 4)
    expect(next.chunks.map((chunk) => run.chunks.includes(chunk))).to.deep.equal([true, false, true])
  })
})
