/** Live heap measurement for the memory benchmarks, which run under `node --expose-gc`. */
const collect = (globalThis as {gc?: () => void}).gc
if (!collect) throw new Error('run with node --expose-gc')

/** The heap in use after two full collections, in MB: what is still referenced. */
export function liveMb(): number {
  collect!()
  collect!()
  return process.memoryUsage().heapUsed / 1e6
}

/** Objects standing for what the watch holds at rest: about `mb` of live heap, so that V8 does not collect in the middle of what is measured. */
export function restingHeap(mb: number): object[] {
  const held: object[] = []
  const start = liveMb()
  while (liveMb() - start < mb) for (let i = 0; i < 100_000; i++) held.push({name: `default/mapping-${held.length}`, port: i})
  return held
}

/** One kernel read, measured. */
export interface MeasuredRead {
  /** How far the heap grew from a collected heap to the read's end: the state read and what reading it left behind. */
  grewMb: number
  /** What of that stays alive once collected: the state. */
  stateMb: number
  ms: number
  cpuMs: number
}

/** Runs `read` once, measuring the heap it grew and kept, and its wall and CPU time. */
export async function measuredRead(read: () => Promise<unknown>): Promise<MeasuredRead> {
  const before = liveMb()
  const cpu = process.cpuUsage()
  const started = performance.now()
  const result: {state?: unknown} = {state: await read()}
  const ms = performance.now() - started
  const cpuUsed = process.cpuUsage(cpu)
  const grewMb = process.memoryUsage().heapUsed / 1e6 - before
  const withState = liveMb()
  delete result.state
  // The job that resumed this function holds what it resumed it with until it ends.
  await new Promise((resolve) => setImmediate(resolve))
  return {grewMb, stateMb: withState - liveMb(), ms, cpuMs: (cpuUsed.user + cpuUsed.system) / 1000}
}
