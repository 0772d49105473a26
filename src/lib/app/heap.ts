/**
 * V8's heap settings for the commands that hold a whole cluster (sync, watch). By default V8 lets
 * the old generation grow to several times what is live between two collections, and the young one
 * to 32 MB: at 10,000 Mappings that is more than half the peak RSS, and none of it is needed
 * (docs/benchmarks.md, "Memory at 10,000 Mappings").
 */
import {setFlagsFromString} from 'node:v8'

/**
 * Makes V8 collect before the heap has grown far past what is live: the old generation grows by
 * half of what is live (not up to four times), and the young one stays at its starting size, which
 * V8 reads when it would grow it, so setting it at run time takes effect.
 */
export function limitHeapGrowth(): void {
  setFlagsFromString('--heap-growing-percent=50')
  setFlagsFromString('--semi-space-growth-factor=1')
}
