/**
 * V8's heap settings for the commands that hold a whole cluster (sync, watch). By default V8 lets
 * the old generation grow to several times what is live between two collections, and the young one
 * to 32 MB: at 10,000 Mappings that is more than half the peak RSS, and none of it is needed
 * (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'
import type {SyncPass} from '../sync/watch.js'

/** How far the old generation may grow past what is live before V8 collects it, in percent: while the daemon waits and applies changes. */
export const GROWING_PERCENT = 50
/**
 * The same while a pass reads the kernel and plans every Mapping (the daemon's first pass, its
 * periodic resyncs): such a pass leaves tens of MB of garbage (the tools' listings and their
 * parsed states, the first plan), and at 50 % the heap peaked 20-30 MB above what was live after it.
 * V8 reads the flag whenever it sets its next limit, so setting it at run time takes effect.
 */
export const READING_GROWING_PERCENT = 10

/** Sets how far the old generation may grow past what is live before V8 collects it (GROWING_PERCENT, READING_GROWING_PERCENT). */
export function setHeapGrowth(percent: number): void {
  setFlagsFromString(`--heap-growing-percent=${percent}`)
}

/**
 * Makes V8 collect before the heap has grown far past what is live: the old generation grows by
 * half of what is live (not up to four times), and the young one stays at its starting size, which
 * V8 reads when it would grow it, so setting it at run time takes effect.
 */
export function limitHeapGrowth(): void {
  setHeapGrowth(GROWING_PERCENT)
  setFlagsFromString('--semi-space-growth-factor=1')
}

let collect: (() => void) | undefined

/**
 * Collects garbage now. V8 sets when it next collects from what is live at a collection, but it
 * makes its first one only once the heap reaches a size it derives from the machine's memory: on a
 * large host, a daemon that fills its caches and plans its first pass reached 145 MB of heap (95 MB
 * live) before V8 collected at all. The flag is read when a context is made, so the function comes
 * from a new one.
 */
export function collectGarbage(): void {
  collect ??= exposedGc()
  collect()
}

/** V8's `gc`, or, should a Node.js version not hand it to a new context, nothing: V8 then collects when it decides to, as it did before. */
function exposedGc(): () => void {
  setFlagsFromString('--expose-gc')
  try {
    const gc: unknown = runInNewContext('typeof gc === "function" ? gc : undefined')
    if (typeof gc === 'function') return gc as () => void
  } catch {
    // Nothing to fall back to but V8's own timing.
  }
  return () => {}
}

/**
 * `pass`, with garbage collected before and after each pass that reads the kernel (the first, the
 * periodic resyncs), and the heap kept within READING_GROWING_PERCENT of what is live during it:
 * before, so that V8's limit follows what is live rather than its starting size; after, with the
 * growth back at GROWING_PERCENT, so that the listing read and the state it replaced do not set the
 * next limit. Passes after a change, which trust the state applied last, run as they are. A
 * collection stops the daemon for 0.2-0.3 s at 10,000 Mappings: none is made while a change waits,
 * nor after a read that gave way to one; V8 collects on its own meanwhile (once sooner than it
 * would have, its last limit being the reading pass's), and the next read collects before it.
 */
export function collectingAroundReads(pass: SyncPass, collectNow: () => void = collectGarbage, setGrowth: (percent: number) => void = setHeapGrowth): SyncPass {
  return async (load, options) => {
    const reads = options.assumeActual === undefined || options.full
    if (!reads) return await pass(load, options)
    const collectUnlessWaited = (): void => {
      if (!options.claim?.gaveWay && options.changeWaiting?.() !== true) collectNow()
    }
    setGrowth(READING_GROWING_PERCENT)
    collectUnlessWaited()
    try {
      return await pass(load, options)
    } finally {
      setGrowth(GROWING_PERCENT)
      collectUnlessWaited()
    }
  }
}

/** `load`, with garbage collected once it has loaded: the one-shot sync's listing leaves its pages behind, and V8 would not collect them before the pass on top. */
export function collectingAfter<T>(load: () => Promise<T>, collectNow: () => void = collectGarbage): () => Promise<T> {
  return async () => {
    const loaded = await load()
    collectNow()
    return loaded
  }
}
