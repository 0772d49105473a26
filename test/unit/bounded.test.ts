import {expect} from 'chai'
import {mapBounded} from '../../src/lib/sync/bounded.js'

describe('mapBounded', () => {
  for (const [items, limit, most] of [
    [0, 4, 0],
    [3, 4, 3],
    [10, 4, 4],
    [10, 1, 1],
  ] as const) {
    it(`runs ${items} items at most ${limit} at once (${most} here), results in item order`, async () => {
      let inFlight = 0
      let seen = 0
      const results = await mapBounded(
        Array.from({length: items}, (_, i) => i),
        limit,
        async (i) => {
          seen = Math.max(seen, ++inFlight)
          await new Promise((resolve) => setTimeout(resolve, (items - i) * 2))
          inFlight--
          return i * 10
        },
      )
      expect(results).to.deep.equal(Array.from({length: items}, (_, i) => i * 10))
      expect(seen).to.equal(most)
    })
  }
})
