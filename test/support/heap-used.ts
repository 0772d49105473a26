/** The live heap: V8's heap in use right after a full collection. */
import {setFlagsFromString} from 'node:v8'
import {runInNewContext} from 'node:vm'

let gc: (() => void) | undefined

/** Throws when V8 hands no collector to a new context, rather than measuring garbage with the rest. */
export function heapUsedAfterCollection(): number {
  if (!gc) {
    setFlagsFromString('--expose-gc')
    gc = runInNewContext('gc') as () => void
  }
  gc()
  return process.memoryUsage().heapUsed
}
