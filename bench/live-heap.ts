/** Live heap measurement for the memory benchmarks, which run under `node --expose-gc`. */
const collect = (globalThis as {gc?: () => void}).gc
if (!collect) throw new Error('run with node --expose-gc')

/** The heap in use after two full collections, in MB: what is still referenced. */
export function liveMb(): number {
  collect!()
  collect!()
  return process.memoryUsage().heapUsed / 1e6
}
