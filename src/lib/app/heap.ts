/**
 * V8's heap settings for the commands that hold a whole cluster (sync, watch). By default V8 lets
 * the old generation grow to several times what is live between two collections, and the young one
 * to 32 MB: at 10,000 Mappings that is more than half the peak RSS, and none of it is needed
 * (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */
import type {SyncPass} from '../sync/watch.js'

/** V8's flags, set through node:v8, loaded when first used: a dry-run sync that never needs it would pay about 2 ms of its start for the module. */
const setFlagsFromString = (flags: string) => process.getBuiltinModule('node:v8').setFlagsFromString(flags)

/**
 * Makes V8 collect before the heap has grown far past what is live: the old generation grows by
 * half of what is live (not up to four times), and the young one stays at its starting size, which
 * V8 reads when it would grow it, so setting it at run time takes effect.
 */
export function limitHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=50')
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
    const gc: unknown = process.getBuiltinModule('node:vm').runInNewContext('typeof gc === "function" ? gc : undefined')
    if (typeof gc === 'function') return gc as () => void
  } catch {
    // Nothing to fall back to but V8's own timing.
  }
  return () => {}
}

/**
 * `pass`, with garbage collected before and after each pass that reads the kernel (the first, the
 * periodic resyncs): before, so that V8's limit follows what is live rather than its starting size;
 * once the kernel's state is read and parsed, so that the listing's text and what parsing it left
 * behind (nft's 15 MB at 10,000 Mappings, and as much again) are gone before the diff, the apply and
 * the cleanup allocate on top of them; after, so that the state read and the state it replaced do
 * not set the next limit. Passes after a change, which trust the state applied last, run as they
 * are. A collection stops the daemon for 0.1-0.3 s at 10,000 Mappings: none is made while a change
 * waits, nor after a read that gave way to one; V8 collects on its own meanwhile, and the next read
 * collects before it.
 */
export function collectingAroundReads(pass: SyncPass, collectNow: () => void = collectGarbage): SyncPass {
  return async (load, options) => {
    const reads = options.assumeActual === undefined || options.full
    const collectUnlessWaited = (): void => {
      if (reads && !options.claim?.gaveWay && options.changeWaiting?.() !== true) collectNow()
    }
    collectUnlessWaited()
    try {
      return await pass(load, reads ? {...options, afterRead: collectUnlessWaited} : options)
    } finally {
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
