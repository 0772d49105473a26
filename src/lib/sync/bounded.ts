/** API writes run a few at a time: one at a time, 10,000 status patches wait out 10,000 round trips. */

/** How many writes to the API server smartnat keeps in flight. */
export const API_WRITES_IN_FLIGHT = 8

/**
 * Runs `work` for every item, at most `limit` at once, and returns the results in item order.
 * `work` must not reject: each caller turns a failure into a result of its own.
 */
export async function mapBounded<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length)
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++
      results[index] = await work(items[index]!)
    }
  }
  await Promise.all(Array.from({length: Math.max(1, Math.min(limit, items.length))}, worker))
  return results
}
